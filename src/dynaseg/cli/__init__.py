"""The command lines beside ``src/train.py``: one module per command, each with ``main(argv)``
(argument parsing and a call into the package; user errors raise) and ``run()`` (the same with a
user error as one ``error: …`` line and exit 1). Reachable three ways, all equal::

    python scripts/export_onnx.py …        # the scripts/ files are these run() calls
    python -m dynaseg.cli.export_onnx …
    dynaseg-export-onnx …                  # [project.scripts] in pyproject.toml

They sit on the top layer: they compose configs and load checkpoints through :mod:`dynaseg.run`,
which the modules they call (data, models, analysis, complexity) must not import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from dynaseg.errors import exit_on_user_error


def exit_with(main: Callable[[], int | None]) -> NoReturn:
    """Run a command's ``main`` and exit with its code; a user error is one ``error:`` line."""
    sys.exit(exit_on_user_error(main))
