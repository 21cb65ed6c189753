"""Build an ablation table from Hydra multirun directories.

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg

The command is :mod:`dynaseg.reporting.command` (usage and options: ``--help``); the same as
``python -m dynaseg.reporting``.
"""

import sys

from dynaseg.errors import exit_on_user_error
from dynaseg.reporting.command import main

if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
