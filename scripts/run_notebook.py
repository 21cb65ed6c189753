"""Run a notebook headless (nbclient, no Jupyter server), with parameters, like a script.

The command is :mod:`dynaseg.cli.run_notebook` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.run_notebook`` and ``dynaseg-run-notebook``.
"""

from dynaseg.cli.run_notebook import run

if __name__ == "__main__":
    run()
