"""Dataset preparation: release formats → the layouts the datasets read (the commands
``scripts/prep_*.py`` = ``dynaseg.cli.prep_*``).

- Cityscapes: ``*_gtFine_labelIds.png`` → ``*_gtFine_labelTrainIds.png`` with the official label
  table (ids 0..33 → 19 trainIds, the rest 255; cityscapesscripts' ``createTrainIdLabelImgs``).
- PASCAL-Context: the release's per-image ``.mat`` LabelMaps (459 classes) → 60-class palette PNGs
  (0 = background, the 59 classes matched *by name* and numbered in mmseg's order) and the
  train/val lists (VOC 2010 ``ImageSets/Main`` restricted to labelled images, or given lists).
- VOC 2012 "aug": SBD ``cls/*.mat`` (``GTcls.Segmentation``) → ``SegmentationClassAug`` palette
  PNGs, ``trainaug.txt`` (VOC train ∪ SBD − VOC val, 10,582) and ``aug.txt`` (SBD − VOC train −
  VOC val).

Each ``prepare_*`` returns the command's exit status (1 if listed images are missing) and raises
:class:`~dynaseg.errors.DatasetError` naming the file on bad input.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat
from tqdm import tqdm

from dynaseg.data.datasets.cityscapes import LABEL_ID_SUFFIX, TRAIN_ID_SUFFIX, label_id_lut
from dynaseg.data.datasets.files import read_label
from dynaseg.data.datasets.pascal_context import CONTEXT59_CLASSES, CONTEXT60_PALETTE
from dynaseg.errors import DatasetError
from dynaseg.palettes import indexed_image, voc_colormap


# ---------------------------------------------------------------------------- shared
def run_parallel(fn: Callable, jobs: list, workers: int, desc: str) -> Iterable:
    """``fn`` over ``jobs`` with a progress bar (in-process when ``workers <= 1``)."""
    bar = tqdm(total=len(jobs), desc=desc, unit="file")
    if workers <= 1:
        for job in jobs:
            yield fn(job)
            bar.update()
    else:
        with Pool(workers) as pool:
            for result in pool.imap_unordered(fn, jobs, chunksize=16):
                yield result
                bar.update()
    bar.close()


def read_list(path: Path, what: str) -> list[str]:
    """The first word of each non-empty line of an id list."""
    if not path.is_file():
        raise DatasetError(f"{path} does not exist; expected {what} (one id per line)")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def write_list(path: Path, ids: Iterable[str]) -> int:
    """Write ``ids`` sorted, one per line; returns how many."""
    ids = sorted(ids)
    path.write_text("".join(f"{i}\n" for i in ids))
    return len(ids)


def report_missing_images(image_dir: Path, ids: list[str], what: str) -> int:
    """Exit status of a prep script: 1 (with a warning naming one file) if any listed id has no
    ``<image_dir>/<id>.jpg``, else 0."""
    missing = [i for i in ids if not (image_dir / f"{i}.jpg").is_file()]
    if missing:
        print(
            f"warning: {len(missing)} {what} ids have no image, e.g. "
            f"{image_dir / (missing[0] + '.jpg')}",
            file=sys.stderr,
        )
        return 1
    return 0


# ---------------------------------------------------------------------------- Cityscapes
@functools.cache
def _cityscapes_lut() -> np.ndarray:
    return label_id_lut()


def cityscapes_train_ids(job: tuple[Path, Path]) -> str:
    """One labelIds PNG → trainIds PNG (greyscale)."""
    src, dst = job
    raw = read_label(src)
    bad = np.flatnonzero((np.bincount(raw.ravel(), minlength=256) > 0) & (_cityscapes_lut() < 0))
    if len(bad):
        raise DatasetError(
            f"{src} has label ids {bad.tolist()}; expected Cityscapes ids 0..33 (or 255)"
        )
    Image.fromarray(_cityscapes_lut().astype(np.uint8)[raw]).save(dst)
    return src.name


def prepare_cityscapes(root: Path, splits: list[str], overwrite: bool, workers: int) -> int:
    """Write the trainIds PNG beside every labelIds PNG of ``splits`` under ``root/gtFine``."""
    gt = root / "gtFine"
    if not gt.is_dir():
        raise DatasetError(
            f"{gt} does not exist; expected gtFine/<split>/<city>/*{LABEL_ID_SUFFIX} "
            "from gtFine_trainvaltest.zip (or pass --root)"
        )
    jobs = []
    for split in splits:
        for src in sorted((gt / split).glob(f"*/*{LABEL_ID_SUFFIX}")):
            dst = src.with_name(src.name[: -len(LABEL_ID_SUFFIX)] + TRAIN_ID_SUFFIX)
            if overwrite or not dst.exists():
                jobs.append((src, dst))
    if not jobs:
        where = f"{gt}/{{{','.join(splits)}}}"
        print(f"nothing to do: no *{LABEL_ID_SUFFIX} without trainIds under {where}")
        return 0
    for _ in run_parallel(cityscapes_train_ids, jobs, workers, "labelIds → trainIds"):
        pass
    print(f"wrote {len(jobs)} *{TRAIN_ID_SUFFIX} files under {gt}")
    return 0


# ---------------------------------------------------------------------------- PASCAL-Context
_CONTEXT_LINE = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")


def class_key(name: str) -> str:
    """Names compared case- and space-insensitively ("tv monitor" == "tvmonitor")."""
    return re.sub(r"[\s_]+", "", name.lower())


def parse_context_labels(path: Path, numbered: bool = True) -> dict[int, str]:
    """``<id>: <name>`` lines → {id: name}; un-numbered lines are numbered from 1."""
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist; expected the PASCAL-Context class list "
            "(one '<id>: <name>' per line)"
        )
    out: dict[int, str] = {}
    for n, line in enumerate((ln for ln in path.read_text().splitlines() if ln.strip()), 1):
        m = _CONTEXT_LINE.match(line)
        if m:
            out[int(m.group(1))] = m.group(2)
        elif numbered:
            raise DatasetError(f"{path} line {n} {line!r}: expected '<id>: <name>'")
        else:
            out[n] = line.strip()
    return out


def context_label_lut(labels: Path, labels59: Path) -> np.ndarray:
    """Table 459-class id → 60-class index (0 = background), matched by name."""
    full = parse_context_labels(labels)
    chosen = parse_context_labels(labels59, numbered=False)
    by_name = {class_key(v): k for k, v in full.items()}
    ours = {class_key(c): i + 1 for i, c in enumerate(CONTEXT59_CLASSES)}
    if len(chosen) != 59:
        raise DatasetError(f"{labels59} lists {len(chosen)} classes; expected 59")
    lut = np.zeros(max(full) + 1, np.uint8)
    for name in chosen.values():
        key = class_key(name)
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


def _context_png(job: tuple[Path, Path], lut: np.ndarray) -> str:
    mat, out = job
    raw = read_label_map(mat)
    if raw.ndim != 2 or raw.size == 0 or raw.min() < 0 or raw.max() >= len(lut):
        raise DatasetError(
            f"{mat}: LabelMap has shape {raw.shape}, values "
            f"{raw.min() if raw.size else '-'}..{raw.max() if raw.size else '-'}; "
            f"expected a 2-D map of ids 0..{len(lut) - 1}"
        )
    indexed_image(lut[raw.astype(np.int64)], CONTEXT60_PALETTE).save(out)
    return mat.stem


def prepare_pascal_context(
    context: Path,
    voc: Path,
    labels: Path | None = None,
    labels59: Path | None = None,
    split_lists: Path | None = None,
    workers: int = 1,
) -> int:
    """``SegmentationClassContext`` PNGs and the train/val lists under ``voc`` (VOC2010) from the
    release in ``context``; the class lists default to ``context/{labels,59_labels}.txt``."""
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
    lut = context_label_lut(labels or context / "labels.txt", labels59 or context / "59_labels.txt")

    mats = sorted(mat_dir.glob("*.mat"))
    if not mats:
        raise DatasetError(f"no .mat files in {mat_dir}")
    have = {m.stem for m in mats}
    split_dir = voc / "ImageSets" / "SegmentationContext"
    split_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split in ("train", "val"):
        if split_lists:
            ids = read_list(split_lists / f"{split}.txt", f"the {split} list")
            lost = [i for i in ids if i not in have]
            if lost:
                raise DatasetError(
                    f"{len(lost)} ids of {split_lists / f'{split}.txt'} "
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
    for _ in run_parallel(partial(_context_png, lut=lut), jobs, workers, "Context .mat → PNG"):
        pass
    print(f"wrote {len(jobs)} PNGs to {out_dir}")
    print(
        f"wrote {split_dir}/train.txt ({len(splits['train'])} ids) and val.txt "
        f"({len(splits['val'])} ids)"
    )
    ids = [i for s in splits.values() for i in s]
    return report_missing_images(voc / "JPEGImages", ids, "listed")


# ---------------------------------------------------------------------------- VOC 2012 aug
FULL_TRAINAUG_LEN = 10582
VOC_NUM_CLASSES = 21


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
    if seg.ndim != 2 or seg.size == 0 or seg.min() < 0 or seg.max() >= VOC_NUM_CLASSES:
        raise DatasetError(
            f"{path}: GTcls.Segmentation has shape {seg.shape} and values "
            f"{seg.min() if seg.size else '-'}..{seg.max() if seg.size else '-'}; "
            f"expected a 2-D map of class indices 0..{VOC_NUM_CLASSES - 1}"
        )
    return seg.astype(np.uint8)


def _sbd_png(job: tuple[Path, Path]) -> str:
    mat, out = job
    indexed_image(read_sbd_mat(mat), voc_colormap(256)).save(out)
    return mat.stem


def prepare_voc_aug(voc: Path, sbd: Path, workers: int = 1) -> int:
    """``SegmentationClassAug`` PNGs and the trainaug/aug lists under ``voc`` (VOC2012) from the
    SBD release ``sbd`` (``benchmark_RELEASE``)."""
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
    for _ in run_parallel(_sbd_png, jobs, workers, "SBD .mat → PNG"):
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
