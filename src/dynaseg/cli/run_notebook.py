"""Run a notebook headless (nbclient, no Jupyter server), with parameters, like a script.

The values given with ``-p NAME=VALUE`` go into a cell inserted right after the notebook's cell
tagged ``parameters`` (the papermill convention), so they override its defaults. ``VALUE`` is a
Python literal (``2``, ``(0, 3)``, ``["a=b"]``, ``None``); anything else is taken as a string.

Usage::

    python scripts/run_notebook.py notebooks/inspect_checkpoint.ipynb
    python scripts/run_notebook.py notebooks/inspect_checkpoint.ipynb \\
        -p CHECKPOINT=logs/train/runs/<time>/checkpoints/<file>.ckpt -p SAVE_DIR=docs/img
    python scripts/run_notebook.py notebooks/compare_runs.ipynb -p SWEEP=logs/train/multiruns/<time>

The kernel is the Python running this command (its environment and ``PYTHONPATH``). ``--output``
writes the executed notebook (with outputs) elsewhere; the source notebook is never modified.
Also ``python -m dynaseg.cli.run_notebook`` or ``dynaseg-run-notebook``; the runner is
:mod:`dynaseg.notebooks`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.errors import ConfigError
from dynaseg.notebooks import execute_notebook, parse_parameter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--output", type=Path, help="write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        raise ConfigError(f"notebook '{args.notebook}' does not exist")
    from nbclient.exceptions import CellExecutionError

    params = dict(parse_parameter(p) for p in args.param)
    try:
        execute_notebook(args.notebook, params, args.timeout, args.output)
    except CellExecutionError as err:
        print(f"error: {args.notebook} failed:\n{err}", file=sys.stderr)
        return 1
    print(
        f"{args.notebook}: all cells ran"
        + (f"; executed copy: {args.output}" if args.output else "")
    )
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
