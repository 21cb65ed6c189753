"""Write Cityscapes ``*_gtFine_labelTrainIds.png`` from ``*_gtFine_labelIds.png``.

Uses the official label table (ids 0..33 → 19 trainIds, the rest 255), the same mapping as
cityscapesscripts' ``createTrainIdLabelImgs``. Loading also works without this step (the dataset
maps labelIds on the fly); the trainIds PNGs just save that lookup.

Usage: ``python scripts/prep_cityscapes.py --data-dir data [--splits train val] [--workers 8]``
(also ``python -m dynaseg.cli.prep_cityscapes``, ``dynaseg-prep-cityscapes``); the conversion is
:func:`dynaseg.data.prep.prepare_cityscapes`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.data.prep import prepare_cityscapes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--root", type=Path, help="Cityscapes root (default <data-dir>/cityscapes)")
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    ap.add_argument("--overwrite", action="store_true", help="rewrite existing trainIds PNGs")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    root = args.root or args.data_dir / "cityscapes"
    return prepare_cityscapes(root, args.splits, args.overwrite, args.workers)


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
