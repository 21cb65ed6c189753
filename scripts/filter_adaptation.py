"""Do a trained DMNet's generated filters vary between images and follow the scene zoom?

The command is :mod:`dynaseg.cli.filter_adaptation` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.filter_adaptation`` and ``dynaseg-filter-adaptation``.
"""

from dynaseg.cli.filter_adaptation import run

if __name__ == "__main__":
    run()
