"""Convert an mmsegmentation DMNet checkpoint into a checkpoint ``src/eval.py``/``src/predict.py`` load.

The command is :mod:`dynaseg.cli.convert_mmseg_checkpoint` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.convert_mmseg_checkpoint`` and ``dynaseg-convert-mmseg``.
"""

from dynaseg.cli.convert_mmseg_checkpoint import run

if __name__ == "__main__":
    run()
