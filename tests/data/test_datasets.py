"""Dataset modules on tiny fixtures in the exact on-disk formats: layouts, splits, label mapping,
class/palette lengths, errors for people, and the Hydra data configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from dynaseg.data.datasets import (
    ADE20K,
    Cityscapes,
    DatasetError,
    DatasetNotFoundError,
    PascalContext,
    PascalContext59,
    VOCAug,
)
from dynaseg.data.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID
from dynaseg.run.entry import compose
from fixtures_real import (
    CITY_IDS,
    CONTEXT59_CLASSES,
    CONTEXT_TRAIN,
    CONTEXT_VAL,
    SBD_TRAIN,
    TRAINAUG,
    VOC_TRAIN,
    VOC_VAL,
    write_ade20k,
    write_cityscapes,
    write_prepared_datasets,
    write_voc,
)


# -- fixtures: each dataset prepared once per module ---------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_datasets(tmp_path_factory.mktemp("data"))


# -- ADE20K -------------------------------------------------------------------------------------
def test_ade20k(data_dir: Path) -> None:
    root = data_dir / "ADEChallengeData2016"
    train, val = ADE20K(root, "train"), ADE20K(root, "val")
    assert (len(train), len(val)) == (3, 2)
    assert len(ADE20K.CLASSES) == len(ADE20K.PALETTE) == 150
    image, label = train.load(0)
    assert image.shape == (36, 48, 3) and image.dtype == np.uint8
    # raw row 0: [0 other, 1 wall, 150 flag, 5, 12] → [255, 0, 149, 4, 11]
    assert label[0, :5].tolist() == [255, 0, 149, 4, 11]
    assert set(np.unique(label)) <= {255, 0, 149, 4, 11}
    assert train.name(0) == "ADE_train_00000001"


def test_ade20k_missing_root_prints_tree(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        ADE20K(tmp_path / "ADEChallengeData2016", "train")
    msg = str(err.value)
    assert str(tmp_path / "ADEChallengeData2016") in msg
    assert "images/" in msg and "annotations/" in msg and "ADEChallengeData2016.zip" in msg


def test_image_without_label_names_both_files(tmp_path: Path) -> None:
    root = write_ade20k(tmp_path)["root"]
    (root / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    with pytest.raises(
        DatasetError,
        match="ADE_train_00000002.jpg has no label; expected .*"
        "annotations/training/ADE_train_00000002.png",
    ):
        ADE20K(root, "train")
    lenient = ADE20K(root, "train", strict=False)
    assert len(lenient) == 2 and lenient.problems[0][0] == "missing_label"


def test_bad_label_value_and_unreadable_files_name_the_file(tmp_path: Path) -> None:
    root = write_ade20k(tmp_path)["root"]
    label = root / "annotations" / "training" / "ADE_train_00000001.png"
    arr = np.asarray(Image.open(label)).copy()
    arr[3, 3] = 200
    Image.fromarray(arr).save(label)
    ds = ADE20K(root, "train")
    with pytest.raises(DatasetError, match=r"ADE_train_00000001.png has raw value\(s\) 200"):
        ds.load(0)
    (root / "images" / "training" / "ADE_train_00000002.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(
        DatasetError, match=r"ADE_train_00000002.jpg is truncated \(9 bytes, no JPEG end marker\)"
    ):
        ds.load(1)
    (root / "annotations" / "training" / "ADE_train_00000003.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="ADE_train_00000003.png is unreadable"):
        ds.load(2)


def test_size_mismatch_and_rgb_label(tmp_path: Path) -> None:
    root = write_ade20k(tmp_path)["root"]
    Image.fromarray(np.ones((10, 10), np.uint8)).save(
        root / "annotations" / "validation" / "ADE_val_00000001.png"
    )
    Image.fromarray(np.ones((36, 48, 3), np.uint8)).save(
        root / "annotations" / "validation" / "ADE_val_00000002.png"
    )
    ds = ADE20K(root, "val")
    with pytest.raises(DatasetError, match="ADE_val_00000001.png is 10×10 .* is 48×36"):
        ds.load(0)
    with pytest.raises(DatasetError, match="ADE_val_00000002.png is a RGB image"):
        ds.load(1)


# -- VOC aug ------------------------------------------------------------------------------------
def test_voc_aug(data_dir: Path) -> None:
    root = data_dir / "VOCdevkit" / "VOC2012"
    train, val = VOCAug(root, "trainaug"), VOCAug(root, "val")
    assert (len(train), len(val)) == (len(TRAINAUG), len(VOC_VAL)) == (5, 2)
    assert len(VOCAug.CLASSES) == len(VOCAug.PALETTE) == 21
    assert VOCAug.PALETTE[1] == (128, 0, 0) and VOCAug.PALETTE[20] == (0, 64, 128)
    by_name = {s.name: s for s in train.samples}
    # VOC train ids use the fine VOC label (palette PNG, 255 boundaries kept as ignore) ...
    assert by_name[VOC_TRAIN[1]].label.parent.name == "SegmentationClass"
    _, label = train.load(train.samples.index(by_name[VOC_TRAIN[1]]))
    assert label[0, :5].tolist() == [0, 15, 20, 255, 1]
    # ... SBD-only ids the converted SBD label.
    sbd_only = by_name[SBD_TRAIN[1]]
    assert sbd_only.label.parent.name == "SegmentationClassAug"
    _, label = train.load(train.samples.index(sbd_only))
    assert label[0, :4].tolist() == [0, 7, 20, 3]


def test_voc_missing_trainaug_names_file_and_prep(tmp_path: Path) -> None:
    write_voc(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"trainaug.txt does not exist.*prep_voc_aug.py"):
        VOCAug(tmp_path / "VOCdevkit" / "VOC2012", "trainaug")


# -- PASCAL-Context -----------------------------------------------------------------------------
def test_pascal_context_60_and_59(data_dir: Path) -> None:
    root = data_dir / "VOCdevkit" / "VOC2010"
    c60, c59 = PascalContext(root, "val"), PascalContext59(root, "val")
    assert len(PascalContext(root, "train")) == len(CONTEXT_TRAIN)
    assert len(c60) == len(c59) == len(CONTEXT_VAL)
    assert len(c60.CLASSES) == len(c60.PALETTE) == 60 and c60.CLASSES[0] == "background"
    assert len(c59.CLASSES) == len(c59.PALETTE) == 59 and c59.CLASSES[0] == "aeroplane"
    person = CONTEXT59_CLASSES.index("person")
    # raw 459-class ids [0, accordion, aeroplane, wood, person]
    assert c60.load(0)[1][0, :5].tolist() == [0, 0, 1, 59, person + 1]
    assert c59.load(0)[1][0, :5].tolist() == [255, 255, 0, 58, person]


# -- Cityscapes ---------------------------------------------------------------------------------
def test_cityscapes_label_ids_mapped_on_the_fly(data_dir: Path) -> None:
    root = data_dir / "cityscapes"
    sizes = {s: len(Cityscapes(root, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 3, "val": 2, "test": 1}
    assert len(Cityscapes.CLASSES) == len(Cityscapes.PALETTE) == 19
    ds = Cityscapes(root, "val")
    assert ds.samples[0].label.name.endswith("_gtFine_labelIds.png")
    _, label = ds.load(0)
    # ids [road 7, car 26, unlabeled 0, bicycle 33, person 24, ground 6, building 11]
    assert label[0, : len(CITY_IDS)].tolist() == [0, 13, 255, 18, 11, 255, 2]
    assert ds.name(0) == "frankfurt_000000_000019"


def test_cityscapes_prefers_train_ids(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, train_ids=True)
    ds = Cityscapes(tmp_path / "cityscapes", "train")
    assert all(s.label.name.endswith("_gtFine_labelTrainIds.png") for s in ds.samples)
    assert ds.load(0)[1][0, :3].tolist() == [0, 13, 255]


def test_cityscapes_table_is_the_official_one() -> None:
    # cityscapesscripts.helpers.labels (v2.3.0), id -> trainId, transcribed independently of the
    # module under test (checked once against the installed package; not a dependency).
    ignore = 255
    official = dict.fromkeys(range(34), ignore)
    official.update({7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9})
    official.update({23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18})
    assert official == LABEL_ID_TO_TRAIN_ID


# -- Hydra data configs + datamodule ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "train_len"),
    [
        ("ade20k", 3),
        ("voc_aug", 5),
        ("pascal_context", 3),
        ("pascal_context59", 3),
        ("cityscapes", 3),
        ("cityscapes_769", 3),
    ],
)
def test_data_config_builds_batches(data_dir: Path, name: str, train_len: int) -> None:
    cfg = compose("train", [f"data={name}", f"paths.data_dir={data_dir}"])
    dm = instantiate(cfg.data, num_workers=0, batch_size=2)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == train_len
    ds_class = type(dm.datasets["train"])
    assert dm.class_names == list(ds_class.CLASSES) and dm.num_classes == len(ds_class.CLASSES)
    assert dm.palette == [list(c) for c in ds_class.PALETTE]
    batch = next(iter(dm.train_dataloader()))
    crop = tuple(cfg.data.crop_size)
    assert batch["image"].shape == (2, 3, *crop) and batch["label"].shape == (2, *crop)
    valid = (batch["label"] < dm.num_classes) | (batch["label"] == 255)
    assert bool(valid.all())
    val = dm.datasets["val"][0]
    # validation: image resized to the dataset scale, label kept at the original resolution
    assert val["label"].shape == (36, 48) and val["label"].dtype == torch.int64
    assert min(val["image"].shape[1:]) == min(cfg.data.test_scale) or max(
        val["image"].shape[1:]
    ) == max(cfg.data.test_scale)
