"""PASCAL-Context (on VOC 2010): 60 classes incl. background, or 59 with background ignored.

Layout (as mmsegmentation documents it)::

    VOCdevkit/VOC2010/
      JPEGImages/<id>.jpg
      SegmentationClassContext/<id>.png            # 0 = background, 1..59 = the 59 classes
      ImageSets/SegmentationContext/{train,val}.txt

``SegmentationClassContext`` and the split lists are written by ``scripts/prep_pascal_context.py``
from the original release (per-image ``trainval/*.mat`` with a 459-class ``LabelMap``), mapping
the 59 classes *by name*; the class order is mmseg's (alphabetical = order of the 459-class ids).

- :class:`PascalContext` (``pascal_context``): 60 classes, label values used as is.
- :class:`PascalContext59` (``pascal_context59``): 59 classes, background 0 → 255, ``k`` → ``k-1``
  (mmseg ``reduce_zero_label``).
"""

from __future__ import annotations

import numpy as np

from dynaseg.data.base import check_palette
from dynaseg.data.datasets.ade20k import ADE20K
from dynaseg.data.datasets.files import (
    FileSegDataset,
    Sample,
    read_split_file,
    reduce_zero_lut,
)

CONTEXT59_CLASSES: tuple[str, ...] = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
    "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground",
    "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
    "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
    "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood",
)  # fmt: skip
# mmseg uses the first 60 colours of the ADE20K palette for PASCAL-Context.
CONTEXT60_PALETTE = ADE20K.PALETTE[:60]

LAYOUT = """\
<data_dir>/VOCdevkit/VOC2010/
├── JPEGImages/2008_000002.jpg ...
├── SegmentationClassContext/2008_000002.png ...  (0 = background, 1..59; by the prep script)
└── ImageSets/SegmentationContext/
    ├── train.txt   (4,996-4,998 ids)
    └── val.txt     (5,104-5,105 ids)"""
PREPARE = """\
  1. VOCtrainval_03-May-2010.tar → <data_dir>/VOCdevkit/VOC2010
  2. PASCAL-Context trainval.tar.gz (trainval/*.mat, labels.txt, 59_labels.txt)
     → <data_dir>/pascal-context
  3. python scripts/prep_pascal_context.py --data-dir <data_dir>"""


class PascalContext(FileSegDataset):
    """PASCAL-Context, 60 classes incl. background. ``root`` is ``.../VOCdevkit/VOC2010``."""

    CLASSES = ("background", *CONTEXT59_CLASSES)
    PALETTE = CONTEXT60_PALETTE
    SPLITS = ("train", "val")
    LAYOUT = LAYOUT
    PREPARE = PREPARE

    def list_samples(self, split: str) -> list[Sample]:
        ids = read_split_file(
            self.root / "ImageSets" / "SegmentationContext" / f"{split}.txt",
            "it is written by `python scripts/prep_pascal_context.py --data-dir <data_dir>`",
        )
        return [
            Sample(
                i,
                self.root / "JPEGImages" / f"{i}.jpg",
                self.root / "SegmentationClassContext" / f"{i}.png",
            )
            for i in ids
        ]


class PascalContext59(PascalContext):
    """PASCAL-Context, 59 classes: background (0) → 255 (ignored), ``k`` → ``k-1``."""

    CLASSES = CONTEXT59_CLASSES
    PALETTE = CONTEXT60_PALETTE[1:]

    def label_lut(self) -> np.ndarray:
        return reduce_zero_lut(len(self.CLASSES), self.ignore_index)

    def valid_values_text(self) -> str:
        return "class indices 0..58 (raw 1..59) or 255 (raw 0 = background, ignored)"


check_palette(PascalContext.CLASSES, PascalContext.PALETTE)
check_palette(PascalContext59.CLASSES, PascalContext59.PALETTE)
