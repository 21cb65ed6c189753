"""Rewrite the "Checked values" table of docs/configs.md from the typed config schemas.

The command is :mod:`dynaseg.cli.config_docs` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.config_docs`` and ``dynaseg-config-docs``.
"""

from dynaseg.cli.config_docs import run

if __name__ == "__main__":
    run()
