"""Cityscapes (fine annotations): 19 training classes, 255 ignored.

Layout (as mmsegmentation documents it)::

    cityscapes/
      leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
      gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
                                     (or only *_gtFine_labelIds.png — mapped on the fly)

``*_gtFine_labelTrainIds.png`` (written by ``scripts/prep_cityscapes.py`` or cityscapesscripts'
``createTrainIdLabelImgs``) are used as is. Where only ``*_gtFine_labelIds.png`` exists, the 34
label ids are mapped to trainIds with the official table (:data:`LABEL_ID_TO_TRAIN_ID`).
"""

from __future__ import annotations

import numpy as np

from dynaseg.data.base import check_palette
from dynaseg.data.datasets.files import FileSegDataset, Sample, identity_lut
from dynaseg.errors import DatasetNotFoundError

# The official Cityscapes label table (cityscapesscripts.helpers.labels): (name, id, trainId).
# Embedded so that the package does not depend on cityscapesscripts (which pulls in matplotlib,
# pyquaternion, coloredlogs, requests and the obsolete `typing` backport just for this table).
# 'license plate' (id -1) never appears in the labelIds PNGs.
CITYSCAPES_LABELS: tuple[tuple[str, int, int], ...] = (
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9),
    ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14),
    ("bus", 28, 15), ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16),
    ("motorcycle", 32, 17), ("bicycle", 33, 18),
)  # fmt: skip
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {i: t for _, i, t in CITYSCAPES_LABELS}

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
LABEL_ID_SUFFIX = "_gtFine_labelIds.png"


def label_id_lut(ignore_index: int = 255) -> np.ndarray:
    """256-entry table labelId → trainId (ids 0..33; 255 also accepted as ignore)."""
    lut = np.full(256, -1, np.int16)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = ignore_index if train_id == 255 else train_id
    lut[255] = ignore_index
    return lut


class Cityscapes(FileSegDataset):
    """Cityscapes fine, 19 classes (see module docstring). ``root`` is ``.../cityscapes``."""

    CLASSES = (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
        "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle",
    )  # fmt: skip
    PALETTE = (
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    )  # fmt: skip
    SPLITS = ("train", "val", "test")
    LAYOUT = """\
<data_dir>/cityscapes/
├── leftImg8bit/{train,val,test}/<city>/<city>_000000_000019_leftImg8bit.png ...
└── gtFine/{train,val,test}/<city>/<city>_000000_000019_gtFine_labelTrainIds.png ...
                                    (or *_gtFine_labelIds.png, mapped to trainIds on the fly)"""
    PREPARE = """\
  1. leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip → <data_dir>/cityscapes
  2. (optional, faster loading) python scripts/prep_cityscapes.py --data-dir <data_dir>"""

    def list_samples(self, split: str) -> list[Sample]:
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise DatasetNotFoundError(
                f"Cityscapes: image directory {image_dir} does not exist; expected "
                f"leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX} under {self.root}.\n"
                f"Expected layout:\n{self.LAYOUT}"
            )
        samples = []
        for image in sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}")):
            stem = image.name[: -len(IMAGE_SUFFIX)]
            label_dir = self.root / "gtFine" / split / image.parent.name
            label = label_dir / f"{stem}{TRAIN_ID_SUFFIX}"
            if not label.is_file() and (label_dir / f"{stem}{LABEL_ID_SUFFIX}").is_file():
                label = label_dir / f"{stem}{LABEL_ID_SUFFIX}"
            samples.append(Sample(stem, image, label))
        return samples

    def label_lut(self) -> np.ndarray:
        return identity_lut(len(self.CLASSES), self.ignore_index)

    def lut_for(self, sample: Sample) -> np.ndarray:
        if sample.label.name.endswith(LABEL_ID_SUFFIX):
            return _LABEL_ID_LUT
        return self._default_lut


_LABEL_ID_LUT = label_id_lut()
check_palette(Cityscapes.CLASSES, Cityscapes.PALETTE)
