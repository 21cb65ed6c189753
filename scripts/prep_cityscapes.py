#!/usr/bin/env python
"""Write Cityscapes ``*_gtFine_labelTrainIds.png`` from ``*_gtFine_labelIds.png``.

Uses the official label table (ids 0..33 → 19 trainIds, the rest 255), the same mapping as
cityscapesscripts' ``createTrainIdLabelImgs``. Loading also works without this step (the dataset
maps labelIds on the fly); the trainIds PNGs just save that lookup.

Usage: ``python scripts/prep_cityscapes.py --data-dir data [--splits train val] [--workers 8]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dynaseg.data.datasets.cityscapes import LABEL_ID_SUFFIX, TRAIN_ID_SUFFIX, label_id_lut
from dynaseg.data.datasets.files import read_label
from dynaseg.data.prep import run_parallel
from dynaseg.errors import DatasetError, exit_on_user_error

_LUT = label_id_lut()


def convert(job: tuple[Path, Path]) -> str:
    """One labelIds PNG → trainIds PNG (greyscale)."""
    src, dst = job
    raw = read_label(src)
    bad = np.flatnonzero((np.bincount(raw.ravel(), minlength=256) > 0) & (_LUT < 0))
    if len(bad):
        raise DatasetError(
            f"{src} has label ids {bad.tolist()}; expected Cityscapes ids 0..33 (or 255)"
        )
    Image.fromarray(_LUT.astype(np.uint8)[raw]).save(dst)
    return src.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--root", type=Path, help="Cityscapes root (default <data-dir>/cityscapes)")
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    ap.add_argument("--overwrite", action="store_true", help="rewrite existing trainIds PNGs")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    root = args.root or args.data_dir / "cityscapes"
    gt = root / "gtFine"
    if not gt.is_dir():
        raise DatasetError(
            f"{gt} does not exist; expected gtFine/<split>/<city>/*{LABEL_ID_SUFFIX} "
            "from gtFine_trainvaltest.zip (or pass --root)"
        )
    jobs = []
    for split in args.splits:
        for src in sorted((gt / split).glob(f"*/*{LABEL_ID_SUFFIX}")):
            dst = src.with_name(src.name[: -len(LABEL_ID_SUFFIX)] + TRAIN_ID_SUFFIX)
            if args.overwrite or not dst.exists():
                jobs.append((src, dst))
    if not jobs:
        where = f"{gt}/{{{','.join(args.splits)}}}"
        print(f"nothing to do: no *{LABEL_ID_SUFFIX} without trainIds under {where}")
        return 0
    for _ in run_parallel(convert, jobs, args.workers, "labelIds → trainIds"):
        pass
    print(f"wrote {len(jobs)} *{TRAIN_ID_SUFFIX} files under {gt}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
