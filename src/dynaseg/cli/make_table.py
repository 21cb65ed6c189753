"""Build an ablation table from Hydra multirun directories (the logic is ``dynaseg.reporting``).

    python scripts/make_table.py logs/train/multiruns/<time> [--paper dmnet-table1] [--format csv]
    python scripts/make_table.py DIR_A DIR_B:3 --paper dmnet-table4   # + job 3 of another sweep
    python scripts/make_table.py DIR RERUN_DIR     # a re-run of the missing jobs fills their cells
    python scripts/make_table.py DIR --metric-classes context=car,boat --format latex
    python scripts/make_table.py DIR --checkpoint best   # the best-on-validation checkpoints
    python scripts/make_table.py DIR1 DIR2+DIR3:3 --doc docs/ablations.md   # one section per arg
    python scripts/make_table.py mini-controls=A+B dmnet-table1-mini=B --doc docs/ablations.md
    python scripts/make_table.py DIR --by-backbone     # verdicts over backbones (protocol E4)
    python scripts/make_table.py DIR --at-step 300     # the validation after 300 steps (E3 (b))
    python scripts/make_table.py DIR --doc docs/ablations.md --variant "end to end"  # E3 (a)

``python -m dynaseg.cli.make_table`` and ``dynaseg-make-table`` are the same command.

Rows and columns follow the paper's table, with the paper's number beside ours (mean ± 95 % t
interval over seeds); differences to the table's reference cells are paired by seed and
Holm-corrected, the paper's orderings counted resolved-agree / resolved-disagree / unresolved
(``paper_tables.yaml`` declares them); failed, missing, under-seeded, duplicate-seed and
other-commit cells are flagged. Without ``--paper`` the table is found from the sweep's
experiment; sweeps outside the paper tables get the plain job list. ``--checkpoint`` chooses
whose scores: each run's last checkpoint (default, the papers' practice) or its best on
validation mIoU (metrics.json's ``reported_checkpoint.last`` / ``.best``); the choice is printed
under the table.

``--by-backbone`` pairs cells by backbone instead of head seed, a cell holding one value per
``backbone_seed`` (the mean of its head seeds: :func:`dynaseg.analysis.backbone_factor.by_backbone`,
protocol E4); ``--at-step N`` reads each run's validation after N steps from its CSV log instead of
the final one (:func:`dynaseg.analysis.learning_curve.at_step`, E3 (b)). Both: the step first. ``--at-step`` reads validations, no checkpoint's: it goes with
``--checkpoint last`` only.

``--doc`` replaces the generated section with the same heading and keeps the others (their run
directories may be gone); ``--variant`` ends each heading with the protocol change the sweeps
made (e.g. "end to end"), so that sections of one table under different protocols stay apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.errors import UserError
from dynaseg.reporting.command import make_table
from dynaseg.reporting.paper_tables import paper_specs, parse_class_groups, parse_class_pairs
from dynaseg.reporting.rendering import FORMATS
from dynaseg.reporting.sweeps import CHECKPOINTS, Sweep


def sweep_view(
    step: int | None, backbones: bool
) -> tuple[Callable[[Sweep], Sweep] | None, str | None]:
    """What ``--at-step`` / ``--by-backbone`` make of each loaded sweep, and its name for a doc
    section's heading (``None, None``: the sweep as it is)."""
    if step is not None and step < 1:
        raise UserError(f"--at-step {step}: expected a number of optimizer steps >= 1")
    if step is None and not backbones:
        return None, None
    names = ([f"at step {step}"] if step is not None else []) + (
        ["paired over backbones (head seeds averaged per backbone_seed)"] if backbones else []
    )

    # imported here: learning_curve reads metric names through the training module (torch,
    # Lightning), which a plain table does not need
    from dynaseg.analysis.backbone_factor import by_backbone
    from dynaseg.analysis.learning_curve import at_step

    def view(sweep: Sweep) -> Sweep:
        if step is not None:
            sweep = at_step(sweep, step)
        return by_backbone(sweep) if backbones else sweep

    return view, ", ".join(names)


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
        "--checkpoint",
        choices=CHECKPOINTS,
        default="last",
        help="whose scores: each run's last checkpoint (the papers' practice) or its best on "
        "validation mIoU",
    )
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
        "--metric-pairs",
        action="append",
        default=[],
        metavar="NAME=CLS_A,CLS_B",
        help="also a table of the pair accuracy of two classes (of the pixels labelled and "
        "predicted as either, the share given their own class; from val.confusion_matrix in "
        "metrics.json); repeatable",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help="write one section per argument (A+B:3 joins sweeps; TABLE=A+B sets that section's "
        "layout) into this file's generated block",
    )
    parser.add_argument(
        "--by-backbone",
        action="store_true",
        help="pair cells by backbone_seed (a cell: one mean over head seeds per backbone)",
    )
    parser.add_argument(
        "--at-step",
        type=int,
        metavar="N",
        help="read each run's validation after N steps (its CSV log) instead of the final one",
    )
    parser.add_argument(
        "--variant",
        metavar="TEXT",
        help="with --doc: end each section's heading with this protocol change, e.g. 'end to end'",
    )
    args = parser.parse_args(argv)
    metric = [m.strip() for m in args.metric.split(",") if m.strip()] if args.metric else None
    groups = {**parse_class_groups(args.metric_classes), **parse_class_pairs(args.metric_pairs)}
    if args.at_step is not None and args.checkpoint != "last":
        raise UserError(
            f"--at-step {args.at_step} reads each run's validation after that many steps, no "
            f"checkpoint's: --checkpoint {args.checkpoint} does not apply (drop one of them)"
        )
    view, view_name = sweep_view(args.at_step, args.by_backbone)
    if args.variant:
        view_name = ", ".join(n for n in (args.variant.strip(), view_name) if n)
    text = make_table(
        args.sweep_dirs,
        args.paper,
        args.format,
        not args.no_runs,
        metric,
        groups,
        args.doc,
        view,
        view_name,
        args.checkpoint,
    )
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
