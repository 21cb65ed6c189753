#!/usr/bin/env python
"""Performance suite: every figure is the minimum of N repeats, next to its reference *in the same run*.

The command is :mod:`dynaseg.cli.benchmark` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.benchmark`` and ``dynaseg-benchmark``.
"""

from dynaseg.cli.benchmark import run

if __name__ == "__main__":
    run()
