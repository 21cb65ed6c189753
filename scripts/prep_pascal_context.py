#!/usr/bin/env python
"""Prepare PASCAL-Context from its original release — no Detail API needed.

The command is :mod:`dynaseg.cli.prep_pascal_context` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.prep_pascal_context`` and ``dynaseg-prep-pascal-context``.
"""

from dynaseg.cli.prep_pascal_context import run

if __name__ == "__main__":
    run()
