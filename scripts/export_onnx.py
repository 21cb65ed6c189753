"""Export a trained checkpoint to ONNX and check it against ONNX Runtime on CPU.

The command is :mod:`dynaseg.cli.export_onnx` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.export_onnx`` and ``dynaseg-export-onnx``.
"""

from dynaseg.cli.export_onnx import run

if __name__ == "__main__":
    run()
