"""Build an ablation table from Hydra multirun directories.

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg

The command is :mod:`dynaseg.cli.make_table` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.make_table`` and ``dynaseg-make-table``.
"""

from dynaseg.cli.make_table import run

if __name__ == "__main__":
    run()
