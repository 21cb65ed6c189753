"""Performance suite: every figure is the minimum of N repeats, next to its reference *in the same run*.

The sections and what each measures: :mod:`dynaseg.benchmarks.suite` (``--help`` prints it).

Usage: ``python scripts/benchmark.py [--quick] [--json out.json] [--only 1,2,3,4,5,6] [--rounds N]``
(``--rounds``: section 2's paired rounds of current and lean, default 2; results go
to ``logs/benchmark/<time>/benchmark.json`` unless ``--json`` names a file; also
``python -m dynaseg.cli.benchmark``, ``dynaseg-benchmark``)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with


def main(argv: list[str] | None = None) -> int:
    from dynaseg.benchmarks import suite

    usage = __doc__[__doc__.index("Usage:") :]
    ap = argparse.ArgumentParser(
        description=f"{suite.__doc__}\n{usage}", formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default: logs/benchmark/<time>/benchmark.json, like a run dir)",
    )
    ap.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated section numbers")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="section 2: rounds of current vs lean, each in fresh processes (default 2; quick 1)",
    )
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error(f"--rounds takes a number of rounds >= 1; got {args.rounds}")
    try:
        chosen = sorted({int(s) for s in args.only.split(",") if s.strip()})
    except ValueError:
        ap.error(f"--only takes section numbers like 1,4; got {args.only!r}")
    if not chosen or not set(chosen) <= set(suite.SECTIONS):
        ap.error(f"--only: sections are {sorted(suite.SECTIONS)}; got {args.only!r}")
    options = {2: {"rounds": args.rounds}} if args.rounds is not None else {}
    suite.run_suite(args.quick, chosen, args.json, options)
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
