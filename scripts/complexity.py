"""Parameters and FLOPs of a composed model config, whole model and head only.

The command is :mod:`dynaseg.cli.complexity` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.complexity`` and ``dynaseg-complexity``.
"""

from dynaseg.cli.complexity import run

if __name__ == "__main__":
    run()
