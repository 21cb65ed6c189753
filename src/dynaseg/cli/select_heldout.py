"""Choose a setting per arm on the held-out split (docs/ablations.md, Evidence round 2, E3 (c)).

    python scripts/select_heldout.py SWEEP_DIR [--choose model.optimizer.lr] \
        [--by data.dataset.zoom_range model.net.decode_head] [--metric test.mIoU]

SWEEP_DIR is a sweep over the grid of ``--choose`` (``A+B``: several sweeps that together cover
it) whose runs were tested on the held-out split (``data.test_split=test test=true``). Prints, per
arm (the runs equal in every ``--by`` config path), the mean held-out metric of each candidate
over the seeds all candidates ran and the chosen one (ties: the smaller), then the ``DIR:jobs``
argument that makes ``scripts/make_table.py`` build the table from the chosen runs only (read on
val). The logic is ``dynaseg.analysis.heldout_selection``. Also
``python -m dynaseg.cli.select_heldout``, ``dynaseg-select-heldout``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from dynaseg.analysis.heldout_selection import select_on_heldout, selection_argument
from dynaseg.cli import exit_with
from dynaseg.reporting.sweeps import load_sweep


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line (``argv``, else ``sys.argv``), print the choices; user errors
    raise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dir", help="the sweep over the grid (A+B: a grid run as several sweeps)"
    )
    parser.add_argument("--choose", default="model.optimizer.lr", help="the config path chosen")
    parser.add_argument(
        "--by",
        nargs="+",
        default=["data.dataset.zoom_range", "model.net.decode_head"],
        help="config paths that define an arm (one choice per arm)",
    )
    parser.add_argument("--metric", nargs="+", default=["test.mIoU"], help="held-out metric")
    args = parser.parse_args(argv)
    sweep = load_sweep(args.sweep_dir.split("+"))  # A+B: a grid run as several sweeps
    choices = select_on_heldout(sweep, args.choose, args.by, args.metric)
    for c in choices:
        scores = ", ".join(f"{k}: {100 * v:.2f}" for k, v in sorted(c.scores.items()))
        seeds = ", ".join(map(str, c.seeds))
        print(
            f"{' | '.join(map(str, c.group))}: {args.choose}={c.chosen} ({scores}; seeds {seeds})"
        )
    print(selection_argument(args.sweep_dir, choices))
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
