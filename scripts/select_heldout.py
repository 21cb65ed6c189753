"""Choose a setting per arm on the held-out split (docs/ablations.md, Evidence round 2, E3 (c)).

The command is :mod:`dynaseg.cli.select_heldout` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.select_heldout`` and ``dynaseg-select-heldout``.
"""

from dynaseg.cli.select_heldout import run

if __name__ == "__main__":
    run()
