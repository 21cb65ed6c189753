"""PASCAL VOC 2012 with the SBD augmented training set ("VOC aug"): 21 classes incl. background.

Layout (as mmsegmentation documents it)::

    VOCdevkit/VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png        # palette PNGs, 255 = object boundary (ignored)
      SegmentationClassAug/<id>.png     # written by scripts/prep_voc_aug.py from SBD .mat files
      ImageSets/Segmentation/{train,val,trainval}.txt
      ImageSets/Segmentation/{trainaug,aug}.txt   # written by scripts/prep_voc_aug.py

Splits: any list in ``ImageSets/Segmentation`` — ``trainaug`` (10,582 images: VOC train + SBD
train/val minus VOC val) for training and ``val`` (1,449) for evaluation. A sample's label is the
VOC fine annotation ``SegmentationClass/<id>.png`` when there is one, otherwise the SBD conversion
``SegmentationClassAug/<id>.png`` — exactly mmseg's ``train.txt``+``aug.txt`` concatenation.
Label values are used as is: 0..20 classes, 255 ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynaseg.data.base import check_palette
from dynaseg.data.datasets.files import FileSegDataset, Sample, read_split_file
from dynaseg.palettes import voc_colormap


class VOCAug(FileSegDataset):
    """PASCAL VOC 2012 + SBD aug (see module docstring). ``root`` is ``.../VOCdevkit/VOC2012``."""

    CLASSES = (
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
        "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
        "sheep", "sofa", "train", "tvmonitor",
    )  # fmt: skip
    PALETTE = tuple(voc_colormap(21))
    LAYOUT = """\
<data_dir>/VOCdevkit/VOC2012/
├── JPEGImages/2007_000032.jpg ...
├── SegmentationClass/2007_000032.png ...     (VOC palette PNGs, 255 = boundary)
├── SegmentationClassAug/2008_000002.png ...  (from SBD, written by scripts/prep_voc_aug.py)
└── ImageSets/Segmentation/
    ├── train.txt  val.txt  trainval.txt       (1,464 / 1,449 / 2,913 ids)
    └── trainaug.txt  aug.txt                  (10,582 / 9,118 ids, written by the prep script)"""
    PREPARE = """\
  1. VOCtrainval_11-May-2012.tar → <data_dir>/VOCdevkit/VOC2012
  2. SBD benchmark.tgz → <data_dir>/benchmark_RELEASE
  3. python scripts/prep_voc_aug.py --data-dir <data_dir>"""

    def __init__(
        self,
        root: str | Path,
        split: str = "trainaug",
        transform: Callable[..., dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, split, transform, **kwargs)

    def list_samples(self, split: str) -> list[Sample]:
        hint = (
            "trainaug.txt/aug.txt are written by `python scripts/prep_voc_aug.py --data-dir "
            "<data_dir>`"
            if split in ("trainaug", "aug")
            else "it ships with VOCtrainval_11-May-2012.tar"
        )
        ids = read_split_file(self.root / "ImageSets" / "Segmentation" / f"{split}.txt", hint)
        fine, aug = self.root / "SegmentationClass", self.root / "SegmentationClassAug"
        samples = []
        for i in ids:
            label = fine / f"{i}.png"
            if not label.is_file() and split not in ("train", "val", "trainval"):
                label = aug / f"{i}.png"
            samples.append(Sample(i, self.root / "JPEGImages" / f"{i}.jpg", label))
        return samples


check_palette(VOCAug.CLASSES, VOCAug.PALETTE)
