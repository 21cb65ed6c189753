#!/usr/bin/env python
"""Where a training run's CPU time goes, by phase.

The command is :mod:`dynaseg.cli.profile_run` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.profile_run`` and ``dynaseg-profile-run``.
"""

from dynaseg.cli.profile_run import run

if __name__ == "__main__":
    run()
