"""Tiny fixtures written in the datasets' exact on-disk formats (JPEG/PNG, palette PNGs, .mat).

Every writer takes a ``data_dir`` (what ``paths.data_dir`` points at), writes the dataset in its
real layout below it and returns a dict of facts the tests assert against (ids, label pixels).
Images are small (``SIZE``) random noise; labels are deterministic with known pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.io import savemat

from dynaseg.cli import prep_pascal_context, prep_voc_aug
from dynaseg.data.datasets.cityscapes import CITYSCAPES_LABELS
from dynaseg.data.datasets.pascal_context import CONTEXT59_CLASSES
from dynaseg.palettes import indexed_image, voc_colormap

SIZE = (36, 48)  # (h, w) of fixture images


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def write_jpeg(path: Path, hw: tuple[int, int] = SIZE, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = _rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def write_png(path: Path, array: np.ndarray, palette: list[tuple[int, int, int]] | None = None):
    """Greyscale PNG (mode L), or palette PNG (mode P) if a palette is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is None:
        Image.fromarray(array.astype(np.uint8)).save(path)
    else:
        indexed_image(array, palette).save(path)


def _label(values: list[int], hw: tuple[int, int] = SIZE, seed: int = 0) -> np.ndarray:
    """Random label over ``values``; row 0 starts with ``values`` in order (known pixels)."""
    lab = _rng(seed, 1).choice(np.asarray(values), size=hw).astype(np.uint8)
    lab[0, : len(values)] = values
    return lab


# -- ADE20K -------------------------------------------------------------------------------------
def write_ade20k(data_dir: Path, n_train: int = 3, n_val: int = 2) -> dict:
    """``ADEChallengeData2016/{images,annotations}/{training,validation}``; raw labels 0..150."""
    root = data_dir / "ADEChallengeData2016"
    names = {"training": [f"ADE_train_{i:08d}" for i in range(1, n_train + 1)],
             "validation": [f"ADE_val_{i:08d}" for i in range(1, n_val + 1)]}  # fmt: skip
    for k, (sub, ids) in enumerate(names.items()):
        for j, name in enumerate(ids):
            write_jpeg(root / "images" / sub / f"{name}.jpg", seed=100 * k + j)
            write_png(root / "annotations" / sub / f"{name}.png",
                      _label([0, 1, 150, 5, 12], seed=100 * k + j))  # fmt: skip
    return {"root": root, "train": names["training"], "val": names["validation"]}


ADE_TEST = ["ADE_test_00000001", "ADE_test_00000002"]


def write_ade20k_test(data_dir: Path) -> dict:
    """The scene-parsing test release: ``release_test/testing/ADE_test_*.jpg`` (no labels)."""
    root = data_dir / "release_test" / "testing"
    for j, name in enumerate(ADE_TEST):
        write_jpeg(root / f"{name}.jpg", seed=300 + j)
    return {"root": root, "test": ADE_TEST}


# -- VOC 2012 + SBD -----------------------------------------------------------------------------
VOC_TRAIN = ["2007_000032", "2007_000039"]
VOC_VAL = ["2007_000033", "2007_000042"]
SBD_TRAIN = ["2007_000039", "2008_000002", "2008_000003"]  # one overlaps VOC train
SBD_VAL = ["2007_000033", "2008_000007"]  # one overlaps VOC val (must be excluded)
TRAINAUG = sorted((set(VOC_TRAIN) | set(SBD_TRAIN) | set(SBD_VAL)) - set(VOC_VAL))
AUG = sorted((set(SBD_TRAIN) | set(SBD_VAL)) - set(VOC_TRAIN) - set(VOC_VAL))


def write_voc(data_dir: Path) -> dict:
    """``VOCdevkit/VOC2012`` with JPEGs for every VOC/SBD id, palette-PNG ``SegmentationClass``
    (with 255 boundaries) for VOC train/val and ``ImageSets/Segmentation/{train,val,trainval}``."""
    root = data_dir / "VOCdevkit" / "VOC2012"
    all_ids = sorted(set(VOC_TRAIN + VOC_VAL + SBD_TRAIN + SBD_VAL))
    for j, i in enumerate(all_ids):
        write_jpeg(root / "JPEGImages" / f"{i}.jpg", seed=j)
    for j, i in enumerate(VOC_TRAIN + VOC_VAL):
        lab = _label([0, 15, 20, 255, 1], seed=j)
        write_png(root / "SegmentationClass" / f"{i}.png", lab, voc_colormap(256))
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for name, ids in {"train": VOC_TRAIN, "val": VOC_VAL, "trainval": VOC_TRAIN + VOC_VAL}.items():
        (sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return {"root": root}


VOC_TEST = ["2008_000001", "2010_000005"]


def write_voc_test(data_dir: Path) -> dict:
    """VOC2012test.tar extracted over ``VOCdevkit/VOC2012``: test JPEGs beside the others and
    ``ImageSets/Segmentation/test.txt`` (no labels)."""
    root = data_dir / "VOCdevkit" / "VOC2012"
    for j, i in enumerate(VOC_TEST):
        write_jpeg(root / "JPEGImages" / f"{i}.jpg", seed=200 + j)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "test.txt").write_text("".join(f"{i}\n" for i in VOC_TEST))
    return {"root": root, "test": VOC_TEST}


def write_sbd(data_dir: Path) -> dict:
    """``benchmark_RELEASE/dataset/{cls/*.mat,train.txt,val.txt}``; ``GTcls`` is a MATLAB struct
    with ``Segmentation`` (0..20, no boundaries), ``Boundaries`` and ``CategoriesPresent``."""
    ds = data_dir / "benchmark_RELEASE" / "dataset"
    (ds / "cls").mkdir(parents=True, exist_ok=True)
    for j, i in enumerate(SBD_TRAIN + SBD_VAL):
        seg = _label([0, 7, 20, 3], seed=50 + j)
        cats = np.unique(seg[seg > 0]).astype(np.uint8)
        gtcls = {"Segmentation": seg, "Boundaries": np.empty((20, 1), dtype=object),
                 "CategoriesPresent": cats}  # fmt: skip
        for k in range(20):
            gtcls["Boundaries"][k, 0] = np.zeros((1, 1), np.uint8)
        savemat(ds / "cls" / f"{i}.mat", {"GTcls": gtcls}, do_compression=True)
    (ds / "train.txt").write_text("".join(f"{i}\n" for i in SBD_TRAIN))
    (ds / "val.txt").write_text("".join(f"{i}\n" for i in SBD_VAL))
    return {"root": ds.parent}


# -- PASCAL-Context -----------------------------------------------------------------------------
# The 459-class ids of the 59 classes in the real labels.txt (alphabetical = mmseg order).
CONTEXT_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
    115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
    347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip
CONTEXT_TRAIN = ["2008_000002", "2008_000003", "2008_000007"]
CONTEXT_VAL = ["2008_000009", "2008_000016"]


def write_pascal_context_raw(data_dir: Path) -> dict:
    """The original release: ``pascal-context/{trainval/*.mat (LabelMap), labels.txt,
    59_labels.txt}`` + ``VOCdevkit/VOC2010/{JPEGImages, ImageSets/Main/{train,val}.txt}``.

    ``59_labels.txt`` lists the classes in the release's VOC-first order (not mmseg's), so only a
    mapping by name gets the indices right. Row 0 of every LabelMap is
    ``[0, 1 (accordion), 2 (aeroplane), 458 (wood), 284 (person)]``."""
    release = data_dir / "pascal-context"
    voc = data_dir / "VOCdevkit" / "VOC2010"
    names = {i: f"other class {i}" for i in range(1, 460)}
    names[1] = "accordion"
    for cid, cname in zip(CONTEXT_IDS, CONTEXT59_CLASSES, strict=True):
        names[cid] = cname
    release.mkdir(parents=True, exist_ok=True)
    (release / "labels.txt").write_text("".join(f"{k}: {v}\n" for k, v in names.items()))
    voc_first = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
                 "cow", "table", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
                 "sofa", "train", "tvmonitor"]  # fmt: skip
    order = voc_first + [c for c in CONTEXT59_CLASSES if c not in voc_first]
    (release / "59_labels.txt").write_text("".join(f"{k}: {v}\n" for k, v in enumerate(order, 1)))
    (release / "trainval").mkdir(exist_ok=True)
    for j, i in enumerate(CONTEXT_TRAIN + CONTEXT_VAL):
        lab = _rng(j, 7).choice(np.array([0, 1, 2, 458, 284, 100], np.uint16), size=SIZE)
        lab[0, :5] = [0, 1, 2, 458, 284]
        savemat(release / "trainval" / f"{i}.mat", {"LabelMap": lab.astype(np.uint16)})
        write_jpeg(voc / "JPEGImages" / f"{i}.jpg", seed=j)
    write_jpeg(voc / "JPEGImages" / "2008_000099.jpg", seed=99)  # VOC image without Context label
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    (main / "train.txt").write_text("".join(f"{i}\n" for i in [*CONTEXT_TRAIN, "2008_000099"]))
    (main / "val.txt").write_text("".join(f"{i}\n" for i in CONTEXT_VAL))
    return {"root": voc, "release": release}


# -- Cityscapes ---------------------------------------------------------------------------------
CITY_SPLITS = {"train": [("aachen", 2), ("bochum", 1)], "val": [("frankfurt", 2)],
               "test": [("berlin", 1)]}  # fmt: skip
CITY_IDS = [7, 26, 0, 33, 24, 6, 11]  # row 0 of every labelIds PNG


def write_cityscapes(data_dir: Path, train_ids: bool = False) -> dict:
    """``cityscapes/{leftImg8bit,gtFine}/<split>/<city>/`` with PNG images, ``*_gtFine_labelIds``
    and ``*_gtFine_color`` PNGs (and ``*_gtFine_labelTrainIds`` if ``train_ids``)."""
    root = data_dir / "cityscapes"
    to_train = {i: t for _, i, t in CITYSCAPES_LABELS}
    counts = {}
    for split, cities in CITY_SPLITS.items():
        counts[split] = 0
        for city, n in cities:
            for k in range(n):
                stem = f"{city}_{k:06d}_000019"
                img = _rng(k, len(city)).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
                image_dir = root / "leftImg8bit" / split / city
                image_dir.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(image_dir / f"{stem}_leftImg8bit.png")
                ids = _label(CITY_IDS, seed=k)
                gt = root / "gtFine" / split / city
                write_png(gt / f"{stem}_gtFine_labelIds.png", ids)
                colour = np.zeros((*SIZE, 3), np.uint8)
                Image.fromarray(colour).save(gt / f"{stem}_gtFine_color.png")
                if train_ids:
                    write_png(gt / f"{stem}_gtFine_labelTrainIds.png",
                              np.vectorize(to_train.get)(ids).astype(np.uint8))  # fmt: skip
                counts[split] += 1
    return {"root": root, "counts": counts}


def write_prepared_datasets(root: Path) -> Path:
    """All four datasets in their real layouts under ``root``, with the prep scripts run."""
    write_ade20k(root)
    write_voc(root)
    write_sbd(root)
    prep_voc_aug.main(["--data-dir", str(root), "--workers", "1"])
    write_pascal_context_raw(root)
    prep_pascal_context.main(["--data-dir", str(root), "--workers", "1"])
    write_cityscapes(root)  # labelIds only
    return root
