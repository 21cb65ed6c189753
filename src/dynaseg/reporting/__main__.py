"""``python -m dynaseg.reporting``: the command of ``scripts/make_table.py`` (``--help``)."""

import sys

from dynaseg.errors import exit_on_user_error
from dynaseg.reporting.command import main

if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
