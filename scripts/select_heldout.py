"""Choose a setting per arm on the held-out split (docs/ablations.md, Evidence round 2, E3 (c)).

    python scripts/select_heldout.py SWEEP_DIR [--choose model.optimizer.lr] \
        [--by data.dataset.zoom_range model.net.decode_head] [--metric test.mIoU]

SWEEP_DIR is a sweep over the grid of ``--choose`` whose runs were tested on the held-out split
(``data.test_split=test test=true``). Prints, per arm (the runs equal in every ``--by`` config
path), the mean held-out metric of each candidate over the seeds all candidates ran and the chosen
one (ties: the smaller), then the ``DIR:jobs`` argument that makes ``scripts/make_table.py`` build
the table from the chosen runs only (read on val). The logic is
``dynaseg.analysis.heldout_selection``.
"""

from __future__ import annotations

import argparse
import sys

from dynaseg.analysis.heldout_selection import select_on_heldout, selection_argument
from dynaseg.errors import UserError
from dynaseg.tables import load_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="the sweep over the grid")
    parser.add_argument("--choose", default="model.optimizer.lr", help="the config path chosen")
    parser.add_argument(
        "--by",
        nargs="+",
        default=["data.dataset.zoom_range", "model.net.decode_head"],
        help="config paths that define an arm (one choice per arm)",
    )
    parser.add_argument("--metric", nargs="+", default=["test.mIoU"], help="held-out metric")
    args = parser.parse_args(argv)
    try:
        choices = select_on_heldout(load_sweep(args.sweep_dir), args.choose, args.by, args.metric)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for c in choices:
        scores = ", ".join(f"{k}: {100 * v:.2f}" for k, v in sorted(c.scores.items()))
        print(
            f"{' | '.join(map(str, c.group))}: {args.choose}={c.chosen} ({scores}; seeds {', '.join(map(str, c.seeds))})"
        )
    print(selection_argument(args.sweep_dir, choices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
