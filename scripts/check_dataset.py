#!/usr/bin/env python
"""Check a dataset on disk against its data config before training on it.

The command is :mod:`dynaseg.cli.check_dataset` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.check_dataset`` and ``dynaseg-check-dataset``.
"""

from dynaseg.cli.check_dataset import run

if __name__ == "__main__":
    run()
