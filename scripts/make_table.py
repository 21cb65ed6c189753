"""Build an ablation table from Hydra multirun directories (the logic is ``dynaseg.tables``).

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR_A DIR_B:3 --paper dmnet-table4   # + job 3 of another sweep
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg

Rows and columns follow the paper's table, with the paper's number beside ours (mean ± sample std
over seeds); failed, missing and under-seeded cells are flagged. Without ``--paper`` the table is
found from the sweep's experiment; sweeps outside the paper tables get the plain job list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dynaseg.errors import exit_on_user_error
from dynaseg.tables import doc_section, load_sweep, paper_specs, render, update_doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dirs", nargs="+", help="multirun directories; DIR:3,9 = only jobs 3 and 9 of DIR"
    )
    parser.add_argument("--paper", choices=sorted(paper_specs()), help="paper table layout")
    parser.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    parser.add_argument("--no-runs", action="store_true", help="omit the per-job list")
    parser.add_argument(
        "--doc",
        type=Path,
        help="write one section per argument (A+B:3 joins sweeps) into this file's generated block",
    )
    args = parser.parse_args(argv)
    if args.doc:
        sections = [
            doc_section(load_sweep(str(arg).split("+")), args.paper) for arg in args.sweep_dirs
        ]
        update_doc(args.doc, sections)
        print(f"wrote {len(sections)} section(s) to {args.doc}")
        return 0
    sweep = load_sweep(args.sweep_dirs)
    text = render(sweep, args.paper, args.format, runs=not args.no_runs)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
