#!/usr/bin/env python
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

Usage: ``python scripts/prep_pascal_context.py --data-dir data [--workers 8]``
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat

from dynaseg.data.datasets.pascal_context import CONTEXT59_CLASSES, CONTEXT60_PALETTE
from dynaseg.data.prep import read_list, report_missing_images, run_parallel
from dynaseg.errors import DatasetError, exit_on_user_error

_LINE = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")
_PALETTE = [c for rgb in CONTEXT60_PALETTE for c in rgb] + [0] * (3 * (256 - 60))


def norm(name: str) -> str:
    """Names compared case- and space-insensitively ("tv monitor" == "tvmonitor")."""
    return re.sub(r"[\s_]+", "", name.lower())


def parse_labels(path: Path, numbered: bool = True) -> dict[int, str]:
    """``<id>: <name>`` lines → {id: name}; un-numbered lines are numbered from 1."""
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist; expected the PASCAL-Context class list "
            "(one '<id>: <name>' per line)"
        )
    out: dict[int, str] = {}
    for n, line in enumerate((ln for ln in path.read_text().splitlines() if ln.strip()), 1):
        m = _LINE.match(line)
        if m:
            out[int(m.group(1))] = m.group(2)
        elif numbered:
            raise DatasetError(f"{path} line {n} {line!r}: expected '<id>: <name>'")
        else:
            out[n] = line.strip()
    return out


def build_lut(labels: Path, labels59: Path) -> np.ndarray:
    """Table 459-class id → 60-class index (0 = background), matched by name."""
    full = parse_labels(labels)
    chosen = parse_labels(labels59, numbered=False)
    by_name = {norm(v): k for k, v in full.items()}
    ours = {norm(c): i + 1 for i, c in enumerate(CONTEXT59_CLASSES)}
    if len(chosen) != 59:
        raise DatasetError(f"{labels59} lists {len(chosen)} classes; expected 59")
    lut = np.zeros(max(full) + 1, np.uint8)
    for name in chosen.values():
        key = norm(name)
        if key not in ours:
            raise DatasetError(
                f"class {name!r} of {labels59} is not one of the 59 "
                f"PASCAL-Context classes {list(CONTEXT59_CLASSES)}"
            )
        if key not in by_name:
            raise DatasetError(f"class {name!r} of {labels59} is not in {labels}")
        lut[by_name[key]] = ours[key]
    return lut


def read_label_map(path: Path) -> np.ndarray:
    try:
        mat = loadmat(str(path), squeeze_me=True)
    except Exception as err:  # scipy raises several types for corrupt files
        raise DatasetError(f"{path} is not a readable MATLAB file ({err})") from None
    if "LabelMap" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(
            f"{path} has no LabelMap; expected a PASCAL-Context trainval/*.mat (variables: {found})"
        )
    return np.asarray(mat["LabelMap"])


def _convert(job: tuple[Path, Path], lut: np.ndarray) -> str:
    mat, out = job
    raw = read_label_map(mat)
    if raw.ndim != 2 or raw.size == 0 or raw.min() < 0 or raw.max() >= len(lut):
        raise DatasetError(
            f"{mat}: LabelMap has shape {raw.shape}, values "
            f"{raw.min() if raw.size else '-'}..{raw.max() if raw.size else '-'}; "
            f"expected a 2-D map of ids 0..{len(lut) - 1}"
        )
    img = Image.fromarray(lut[raw.astype(np.int64)])
    img.putpalette(_PALETTE)
    img.save(out)
    return mat.stem


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
    mat_dir = context / "trainval"
    if not mat_dir.is_dir():
        raise DatasetError(
            f"{mat_dir} does not exist; expected the PASCAL-Context release "
            "(trainval.tar.gz → trainval/*.mat) there, or pass --context"
        )
    if not voc.is_dir():
        raise DatasetError(
            f"VOC 2010 directory {voc} does not exist; expected VOCdevkit/VOC2010 "
            "from VOCtrainval_03-May-2010.tar (or pass --voc2010)"
        )
    lut = build_lut(
        args.labels or context / "labels.txt", args.labels59 or context / "59_labels.txt"
    )

    mats = sorted(mat_dir.glob("*.mat"))
    if not mats:
        raise DatasetError(f"no .mat files in {mat_dir}")
    have = {m.stem for m in mats}
    split_dir = voc / "ImageSets" / "SegmentationContext"
    split_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split in ("train", "val"):
        if args.split_lists:
            ids = read_list(args.split_lists / f"{split}.txt", f"the {split} list")
            lost = [i for i in ids if i not in have]
            if lost:
                raise DatasetError(
                    f"{len(lost)} ids of {args.split_lists / f'{split}.txt'} "
                    f"have no label, e.g. {mat_dir / (lost[0] + '.mat')}"
                )
        else:
            src = voc / "ImageSets" / "Main" / f"{split}.txt"
            ids = [i for i in read_list(src, f"the VOC 2010 {split} list") if i in have]
        splits[split] = sorted(set(ids))
        (split_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in splits[split]))

    out_dir = voc / "SegmentationClassContext"
    out_dir.mkdir(exist_ok=True)
    jobs = [(m, out_dir / f"{m.stem}.png") for m in mats]
    for _ in run_parallel(partial(_convert, lut=lut), jobs, args.workers, "Context .mat → PNG"):
        pass
    print(f"wrote {len(jobs)} PNGs to {out_dir}")
    print(
        f"wrote {split_dir}/train.txt ({len(splits['train'])} ids) and val.txt "
        f"({len(splits['val'])} ids)"
    )
    ids = [i for s in splits.values() for i in s]
    return report_missing_images(voc / "JPEGImages", ids, "listed")


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
