"""Build an ablation table from Hydra multirun directories (the logic is ``dynaseg.reporting``).

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR_A DIR_B:3 --paper dmnet-table4   # + job 3 of another sweep
    python scripts/make_table.py DIR RERUN_DIR     # a re-run of the missing jobs fills their cells
    python scripts/make_table.py DIR --metric-classes context=car,boat --format latex
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg
    python scripts/make_table.py mini-controls=A+B dmnet-table1-mini=B --doc docs/ablations.md

``python -m dynaseg.cli.make_table`` and ``dynaseg-make-table`` are the same command.

Rows and columns follow the paper's table, with the paper's number beside ours (mean ± 95 % t
interval over seeds); differences to the table's reference cells are paired by seed and
Holm-corrected, the paper's orderings counted resolved-agree / resolved-disagree / unresolved
(``paper_tables.yaml`` declares them); failed, missing, under-seeded, duplicate-seed and
other-commit cells are flagged. Without ``--paper`` the table is found from the sweep's
experiment; sweeps outside the paper tables get the plain job list.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.reporting.command import make_table
from dynaseg.reporting.paper_tables import paper_specs, parse_class_groups
from dynaseg.reporting.rendering import FORMATS


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line (``argv``, else ``sys.argv``), print the table; user errors raise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dirs", nargs="+", help="multirun directories; DIR:3,9 = only jobs 3 and 9 of DIR"
    )
    parser.add_argument("--paper", choices=sorted(paper_specs()), help="paper table layout")
    parser.add_argument("--format", choices=FORMATS, default="markdown")
    parser.add_argument("--no-runs", action="store_true", help="omit the per-job list")
    parser.add_argument(
        "--metric",
        help="metrics.json paths (comma-separated, first present wins) replacing the table's, "
        "e.g. val.mIoU",
    )
    parser.add_argument(
        "--metric-classes",
        action="append",
        default=[],
        metavar="NAME=CLS1,CLS2",
        help="also a table of mIoU over these classes (per_class in metrics.json); repeatable",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help="write one section per argument (A+B:3 joins sweeps; TABLE=A+B sets that section's "
        "layout) into this file's generated block",
    )
    args = parser.parse_args(argv)
    metric = [m.strip() for m in args.metric.split(",") if m.strip()] if args.metric else None
    groups = parse_class_groups(args.metric_classes)
    text = make_table(
        args.sweep_dirs, args.paper, args.format, not args.no_runs, metric, groups, args.doc
    )
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
