"""Build an ablation table from Hydra multirun directories (the logic is ``dynaseg.tables``).

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR_A DIR_B:3 --paper dmnet-table4   # + job 3 of another sweep
    python scripts/make_table.py DIR RERUN_DIR     # a re-run of the missing jobs fills their cells
    python scripts/make_table.py DIR --metric-classes context=car,boat --format latex
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg
    python scripts/make_table.py mini-controls=A+B dmnet-table1-mini=B --doc docs/ablations.md

Rows and columns follow the paper's table, with the paper's number beside ours (mean ± 95 % t
interval over seeds); differences to the table's reference cells are paired by seed and
Holm-corrected, the paper's orderings counted resolved-agree / resolved-disagree / unresolved
(``paper_tables.yaml`` declares them); failed, missing, under-seeded, duplicate-seed and
other-commit cells are flagged. Without ``--paper`` the table is found from the sweep's
experiment; sweeps outside the paper tables get the plain job list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dynaseg.errors import exit_on_user_error
from dynaseg.tables import (
    FORMATS,
    doc_section,
    load_sweep,
    paper_specs,
    parse_class_groups,
    render,
    update_doc,
)


def main(argv: list[str] | None = None) -> int:
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
    if args.doc:
        sections = []
        for arg in map(str, args.sweep_dirs):
            # TABLE=A+B: this section's layout (several tables in one --doc call)
            name, sep, dirs = arg.partition("=")
            paper = name if sep and name in paper_specs() else args.paper
            dirs = dirs if sep and name in paper_specs() else arg
            sections.append(doc_section(load_sweep(dirs.split("+")), paper, None, metric, groups))
        update_doc(args.doc, sections)
        print(f"wrote {len(sections)} section(s) to {args.doc}")
        return 0
    sweep = load_sweep(args.sweep_dirs)
    text = render(sweep, args.paper, args.format, not args.no_runs, metric, groups)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
