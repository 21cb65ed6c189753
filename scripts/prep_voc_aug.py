#!/usr/bin/env python
"""Prepare PASCAL VOC 2012 "aug": SBD ``.mat`` labels → ``SegmentationClassAug`` PNGs + split lists.

The command is :mod:`dynaseg.cli.prep_voc_aug` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.prep_voc_aug`` and ``dynaseg-prep-voc-aug``.
"""

from dynaseg.cli.prep_voc_aug import run

if __name__ == "__main__":
    run()
