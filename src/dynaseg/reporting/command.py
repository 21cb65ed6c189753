"""Build an ablation table from Hydra multirun directories (the logic is ``dynaseg.reporting``).

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR_A DIR_B:3 --paper dmnet-table4   # + job 3 of another sweep
    python scripts/make_table.py DIR RERUN_DIR     # a re-run of the missing jobs fills their cells
    python scripts/make_table.py DIR --metric-classes context=car,boat --format latex
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg
    python scripts/make_table.py mini-controls=A+B dmnet-table1-mini=B --doc docs/ablations.md

``python -m dynaseg.reporting`` is the same command.

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

from dynaseg.reporting.doc_sections import doc_section, update_doc
from dynaseg.reporting.paper_tables import paper_specs, parse_class_groups
from dynaseg.reporting.rendering import FORMATS, render
from dynaseg.reporting.sweeps import load_sweep


def make_table(
    sweep_dirs: Sequence[str | Path],
    paper: str | None = None,
    fmt: str = "markdown",
    runs: bool = True,
    metric: Sequence[str] | None = None,
    class_groups: dict[str, list[str]] | None = None,
    doc: Path | None = None,
) -> str:
    """The table(s) of the sweeps ``sweep_dirs`` as text
    (:func:`~dynaseg.reporting.rendering.render`); with ``doc``, one section per argument written
    into that file's generated block instead (``A+B:3`` joins sweeps; ``TABLE=A+B`` sets that
    section's layout), and the line saying so."""
    if doc is None:
        return render(load_sweep(sweep_dirs), paper, fmt, runs, metric, class_groups)
    sections = []
    for arg in map(str, sweep_dirs):
        # TABLE=A+B: this section's layout (several tables in one --doc call)
        name, sep, dirs = arg.partition("=")
        section_paper = name if sep and name in paper_specs() else paper
        dirs = dirs if sep and name in paper_specs() else arg
        sweep = load_sweep(dirs.split("+"))
        sections.append(doc_section(sweep, section_paper, None, metric, class_groups))
    update_doc(doc, sections)
    return f"wrote {len(sections)} section(s) to {doc}"


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
