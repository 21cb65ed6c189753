"""The preparation scripts on tiny fixtures in the real release formats (.mat, labelIds PNGs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynaseg.errors import DatasetError
from fixtures_real import (
    AUG,
    CITY_IDS,
    CONTEXT59_CLASSES,
    CONTEXT_TRAIN,
    CONTEXT_VAL,
    SBD_TRAIN,
    TRAINAUG,
    load_script,
    write_cityscapes,
    write_pascal_context_raw,
    write_sbd,
    write_voc,
)

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_prep_voc_aug(tmp_path: Path) -> None:
    write_voc(tmp_path)
    write_sbd(tmp_path)
    assert load_script("prep_voc_aug").main(["--data-dir", str(tmp_path), "--workers", "1"]) == 0
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    assert (sets / "trainaug.txt").read_text().split() == TRAINAUG
    assert (sets / "aug.txt").read_text().split() == AUG
    png = Image.open(voc / "SegmentationClassAug" / f"{SBD_TRAIN[1]}.png")
    assert png.mode == "P"
    assert np.asarray(png)[0, :4].tolist() == [0, 7, 20, 3]


def test_prep_voc_aug_reports_bad_mat(tmp_path: Path) -> None:
    write_voc(tmp_path)
    write_sbd(tmp_path)
    bad = tmp_path / "benchmark_RELEASE" / "dataset" / "cls" / f"{SBD_TRAIN[0]}.mat"
    bad.write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match=str(bad)):
        load_script("prep_voc_aug").main(["--data-dir", str(tmp_path), "--workers", "1"])


def test_prep_voc_aug_missing_sbd(tmp_path: Path) -> None:
    write_voc(tmp_path)
    with pytest.raises(DatasetError, match="benchmark_RELEASE"):
        load_script("prep_voc_aug").main(["--data-dir", str(tmp_path)])


def test_prep_pascal_context_maps_by_name(tmp_path: Path) -> None:
    write_pascal_context_raw(tmp_path)
    script = load_script("prep_pascal_context")
    assert script.main(["--data-dir", str(tmp_path), "--workers", "1"]) == 0
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    split_dir = voc / "ImageSets" / "SegmentationContext"
    # VOC 2010 Main/train.txt also lists an image without a Context label: it is left out.
    assert (split_dir / "train.txt").read_text().split() == CONTEXT_TRAIN
    assert (split_dir / "val.txt").read_text().split() == CONTEXT_VAL
    label = np.asarray(Image.open(voc / "SegmentationClassContext" / f"{CONTEXT_VAL[0]}.png"))
    # raw [0, accordion, aeroplane, wood, person] → background, background, 1, 59, person
    assert label[0, :5].tolist() == [0, 0, 1, 59, 1 + CONTEXT59_CLASSES.index("person")]
    assert label.max() <= 59


def test_prep_pascal_context_unknown_class_name(tmp_path: Path) -> None:
    info = write_pascal_context_raw(tmp_path)
    labels59 = info["release"] / "59_labels.txt"
    labels59.write_text(labels59.read_text().replace("tvmonitor", "television"))
    with pytest.raises(DatasetError, match="television"):
        load_script("prep_pascal_context").main(["--data-dir", str(tmp_path), "--workers", "1"])


def test_prep_cityscapes(tmp_path: Path) -> None:
    info = write_cityscapes(tmp_path)
    assert load_script("prep_cityscapes").main(["--data-dir", str(tmp_path), "--workers", "1"]) == 0
    written = sorted(info["root"].glob("gtFine/*/*/*_gtFine_labelTrainIds.png"))
    assert len(written) == sum(info["counts"].values())
    train_ids = np.asarray(Image.open(written[0]))
    # ids [road 7, car 26, unlabeled 0, bicycle 33, person 24, ground 6, building 11]
    assert train_ids[0, : len(CITY_IDS)].tolist() == [0, 13, 255, 18, 11, 255, 2]
