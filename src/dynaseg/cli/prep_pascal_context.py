"""Prepare PASCAL-Context from its original release — no Detail API needed.

Input (as released)::

    <data_dir>/pascal-context/trainval/<id>.mat      # per image, LabelMap: 459-class ids (0 = none)
    <data_dir>/pascal-context/labels.txt             # "<id>: <name>" for the 459 classes
    <data_dir>/pascal-context/59_labels.txt          # the 59 evaluated classes, "<id>: <name>"
    <data_dir>/VOCdevkit/VOC2010/{JPEGImages,ImageSets/Main/{train,val}.txt}

Output::

    VOC2010/SegmentationClassContext/<id>.png          # 0 = background, 1..59 (mmseg class order)
    VOC2010/ImageSets/SegmentationContext/{train,val}.txt

The 59 classes are matched *by name* between ``59_labels.txt`` and ``labels.txt`` and numbered in
mmseg's order (alphabetical, which is also the order of their 459-class ids); every other class and
unlabelled pixels become background 0 (``pascal_context59`` ignores it). Splits follow the VOC 2010
``ImageSets/Main/{train,val}.txt`` lists restricted to images that have a ``.mat`` (the official
PASCAL-Context train/val); pass ``--split-lists DIR`` to use ``DIR/{train,val}.txt`` instead (e.g.
mmseg's lists from the Detail API, 4,996/5,104 images).

Usage: ``python scripts/prep_pascal_context.py --data-dir data [--workers 8]`` (also
``python -m dynaseg.cli.prep_pascal_context``, ``dynaseg-prep-pascal-context``); the conversion is
:func:`dynaseg.data.prep.prepare_pascal_context`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.data.prep import prepare_pascal_context


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--context", type=Path, help="release dir (default <data-dir>/pascal-context)")
    ap.add_argument("--voc2010", type=Path, help="default <data-dir>/VOCdevkit/VOC2010")
    ap.add_argument("--labels", type=Path, help="459-class list (default <context>/labels.txt)")
    ap.add_argument("--labels59", type=Path, help="59-class list (default <context>/59_labels.txt)")
    ap.add_argument("--split-lists", type=Path, help="dir with train.txt/val.txt to use as splits")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    context = args.context or args.data_dir / "pascal-context"
    voc = args.voc2010 or args.data_dir / "VOCdevkit" / "VOC2010"
    return prepare_pascal_context(
        context, voc, args.labels, args.labels59, args.split_lists, args.workers
    )


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
