#!/usr/bin/env python
"""Prepare PASCAL VOC 2012 "aug": SBD ``.mat`` labels → ``SegmentationClassAug`` PNGs + split lists.

Input (as released)::

    <data_dir>/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass}
    <data_dir>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    <data_dir>/benchmark_RELEASE/dataset/{cls/*.mat,train.txt,val.txt}  # SBD: GTcls.Segmentation

Output::

    VOC2012/SegmentationClassAug/<id>.png          # one palette PNG per SBD image, values 0..20
    VOC2012/ImageSets/Segmentation/trainaug.txt    # VOC train ∪ SBD − VOC val (10,582)
    VOC2012/ImageSets/Segmentation/aug.txt         # SBD − VOC train − VOC val (9,118)

Usage: ``python scripts/prep_voc_aug.py --data-dir data [--workers 8]``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat

from dynaseg.data.prep import read_list, report_missing_images, run_parallel
from dynaseg.errors import DatasetError, exit_on_user_error
from dynaseg.palettes import voc_colormap

FULL_TRAINAUG_LEN = 10582
NUM_CLASSES = 21
_PALETTE = [c for rgb in voc_colormap(256) for c in rgb]


def read_sbd_mat(path: Path) -> np.ndarray:
    """The class map ``GTcls.Segmentation`` of one SBD ``cls/*.mat`` file (uint8, 0..20)."""
    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises several types for corrupt files
        raise DatasetError(f"{path} is not a readable MATLAB file ({err})") from None
    gt = mat.get("GTcls")
    seg = getattr(gt, "Segmentation", None)
    if seg is None:
        raise DatasetError(
            f"{path} has no GTcls.Segmentation; expected an SBD cls/*.mat file "
            f"(variables found: {sorted(k for k in mat if not k.startswith('__'))})"
        )
    seg = np.asarray(seg)
    if seg.ndim != 2 or seg.size == 0 or seg.min() < 0 or seg.max() >= NUM_CLASSES:
        raise DatasetError(
            f"{path}: GTcls.Segmentation has shape {seg.shape} and values "
            f"{seg.min() if seg.size else '-'}..{seg.max() if seg.size else '-'}; "
            f"expected a 2-D map of class indices 0..{NUM_CLASSES - 1}"
        )
    return seg.astype(np.uint8)


def write_palette_png(label: np.ndarray, path: Path) -> None:
    """Save a uint8 class map as a VOC palette PNG (indices preserved)."""
    img = Image.fromarray(label)
    img.putpalette(_PALETTE)
    img.save(path)


def _convert(job: tuple[Path, Path]) -> str:
    mat, out = job
    write_palette_png(read_sbd_mat(mat), out)
    return mat.stem


def write_list(path: Path, ids: Iterable[str]) -> int:
    ids = sorted(ids)
    path.write_text("".join(f"{i}\n" for i in ids))
    return len(ids)


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
    cls_dir = sbd / "dataset" / "cls"
    if not voc.is_dir():
        raise DatasetError(
            f"VOC 2012 directory {voc} does not exist; expected VOCdevkit/VOC2012 "
            "from VOCtrainval_11-May-2012.tar (or pass --voc)"
        )
    if not cls_dir.is_dir():
        raise DatasetError(
            f"SBD directory {cls_dir} does not exist; expected "
            "benchmark_RELEASE/dataset/cls/*.mat from SBD benchmark.tgz (or pass --sbd)"
        )
    seg_sets = voc / "ImageSets" / "Segmentation"
    voc_train = read_list(seg_sets / "train.txt", "the VOC 2012 segmentation train list")
    voc_val = read_list(seg_sets / "val.txt", "the VOC 2012 segmentation val list")
    sbd_ids = read_list(sbd / "dataset" / "train.txt", "the SBD train list") + read_list(
        sbd / "dataset" / "val.txt", "the SBD val list"
    )

    out_dir = voc / "SegmentationClassAug"
    out_dir.mkdir(exist_ok=True)
    mats = sorted(cls_dir.glob("*.mat"))
    missing = sorted(set(sbd_ids) - {m.stem for m in mats})
    if missing:
        raise DatasetError(
            f"{len(missing)} SBD ids listed in train/val.txt have no .mat in "
            f"{cls_dir}, e.g. {cls_dir / (missing[0] + '.mat')}"
        )
    jobs = [(m, out_dir / f"{m.stem}.png") for m in mats]
    for _ in run_parallel(_convert, jobs, args.workers, "SBD .mat → PNG"):
        pass

    trainaug = (set(voc_train) | set(sbd_ids)) - set(voc_val)
    aug = set(sbd_ids) - set(voc_train) - set(voc_val)
    n_trainaug = write_list(seg_sets / "trainaug.txt", trainaug)
    n_aug = write_list(seg_sets / "aug.txt", aug)
    print(f"wrote {len(jobs)} PNGs to {out_dir}")
    print(
        f"wrote {seg_sets / 'trainaug.txt'} ({n_trainaug} ids) and {seg_sets / 'aug.txt'} ({n_aug})"
    )
    if n_trainaug != FULL_TRAINAUG_LEN:
        print(f"note: the full VOC 2012 + SBD release gives {FULL_TRAINAUG_LEN} trainaug ids")
    return report_missing_images(voc / "JPEGImages", sorted(trainaug), "trainaug")


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
