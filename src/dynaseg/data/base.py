"""The dataset contract: every dataset (synthetic or on disk) is a small class of this shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset


class SegmentationDataset(Dataset):
    """A semantic-segmentation split: ``load(i)`` gives an RGB uint8 image ``(H, W, 3)`` and a
    uint8 label ``(H, W)`` whose values are class indices or ``ignore_index`` (the dataset's label
    mapping is already applied). ``__getitem__`` applies the albumentations ``transform`` and returns
    ``{"image": float (3, H, W), "label": int64 (H', W'), "name": str}``.

    Subclasses set ``CLASSES`` and ``PALETTE`` and implement ``__len__``, ``load`` and ``name``.
    """

    CLASSES: ClassVar[tuple[str, ...]] = ()
    PALETTE: ClassVar[tuple[tuple[int, int, int], ...]] = ()
    ignore_index: int = 255

    def __init__(self, split: str, transform: Callable[..., dict[str, Any]] | None = None) -> None:
        self.split = split
        self.transform = transform

    @property
    def num_classes(self) -> int:
        return len(self.CLASSES)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def name(self, index: int) -> str:
        return f"{self.split}_{index:06d}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.load(index)
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image_t, label_t = out["image"], out["mask"]
        else:
            image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
            label_t = torch.from_numpy(label)
        label_t = torch.as_tensor(label_t).long()
        return {"image": image_t.float(), "label": label_t, "name": self.name(index)}


def check_palette(classes: Sequence[str], palette: Sequence[Sequence[int]]) -> None:
    """A dataset module's class list and palette must agree (one RGB triple per class)."""
    if len(classes) != len(palette) or any(len(c) != 3 for c in palette):
        raise ValueError(
            f"palette has {len(palette)} entries for {len(classes)} classes; need one RGB triple "
            "per class"
        )
