#!/usr/bin/env python
"""Write Cityscapes ``*_gtFine_labelTrainIds.png`` from ``*_gtFine_labelIds.png``.

The command is :mod:`dynaseg.cli.prep_cityscapes` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.prep_cityscapes`` and ``dynaseg-prep-cityscapes``.
"""

from dynaseg.cli.prep_cityscapes import run

if __name__ == "__main__":
    run()
