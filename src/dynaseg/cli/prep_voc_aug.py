"""Prepare PASCAL VOC 2012 "aug": SBD ``.mat`` labels → ``SegmentationClassAug`` PNGs + split lists.

Input (as released)::

    <data_dir>/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass}
    <data_dir>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    <data_dir>/benchmark_RELEASE/dataset/{cls/*.mat,train.txt,val.txt}  # SBD: GTcls.Segmentation

Output::

    VOC2012/SegmentationClassAug/<id>.png          # one palette PNG per SBD image, values 0..20
    VOC2012/ImageSets/Segmentation/trainaug.txt    # VOC train ∪ SBD − VOC val (10,582)
    VOC2012/ImageSets/Segmentation/aug.txt         # SBD − VOC train − VOC val (9,118)

Usage: ``python scripts/prep_voc_aug.py --data-dir data [--workers 8]`` (also
``python -m dynaseg.cli.prep_voc_aug``, ``dynaseg-prep-voc-aug``); the conversion is
:func:`dynaseg.data.prep.prepare_voc_aug`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.data.prep import prepare_voc_aug


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="holds VOCdevkit/ and benchmark_RELEASE/",
    )
    ap.add_argument("--voc", type=Path, help="VOC2012 dir (default <data-dir>/VOCdevkit/VOC2012)")
    ap.add_argument("--sbd", type=Path, help="SBD root (default <data-dir>/benchmark_RELEASE)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    voc = args.voc or args.data_dir / "VOCdevkit" / "VOC2012"
    sbd = args.sbd or args.data_dir / "benchmark_RELEASE"
    return prepare_voc_aug(voc, sbd, args.workers)


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
