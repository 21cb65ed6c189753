"""Albumentations pipelines with mmsegmentation's semantics.

Training (mmseg ``train_pipeline``): random rescale in ``ratio_range`` of the dataset ``scale``
keeping the aspect ratio → random crop whose most frequent class covers < ``cat_max_ratio``
(up to 10 tries) → horizontal flip → photometric distortion → ImageNet normalisation → pad to the
crop size (image 0, label ``ignore_index``).

Evaluation: resize the *image* to ``scale`` keeping the ratio; the label keeps its original
resolution, so the metric compares at the original label size (the segmentor resizes the logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rescale_size(
    height: int, width: int, scale: Sequence[int], ratio: float = 1.0
) -> tuple[int, int]:
    """mmcv ``rescale`` with ``keep_ratio``: the largest size whose long edge is at most
    ``max(scale)·ratio`` and short edge at most ``min(scale)·ratio``. Returns ``(h, w)``."""
    long_edge, short_edge = max(scale) * ratio, min(scale) * ratio
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


class RandomRescale(A.DualTransform):
    """Rescale to ``scale`` × r, r ~ U(ratio_range), keeping the aspect ratio (mmseg
    ``RandomResize(scale, ratio_range, keep_ratio=True)``). Bilinear image, nearest label."""

    def __init__(
        self, scale: Sequence[int], ratio_range: Sequence[float] = (0.5, 2.0), p: float = 1.0
    ) -> None:
        super().__init__(p=p)
        self.scale = tuple(int(s) for s in scale)
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        h, w = params["shape"][:2]
        ratio = self.py_random.uniform(*self.ratio_range)
        return {"size": rescale_size(h, w, self.scale, ratio)}

    def apply(self, img: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "ratio_range")


class CatMaxRatioRandomCrop(A.DualTransform):
    """Random crop of at most ``crop_size`` (h, w); retried up to ``max_tries`` times until the most
    frequent non-ignored class covers less than ``cat_max_ratio`` of the crop (mmseg
    ``RandomCrop(cat_max_ratio=0.75)``). Smaller images are not padded here (see the pipeline)."""

    def __init__(
        self,
        crop_size: Sequence[int],
        cat_max_ratio: float = 0.75,
        ignore_index: int = 255,
        max_tries: int = 10,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.max_tries = max_tries

    def _random_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        y0 = self.py_random.randint(0, h - ch)
        x0 = self.py_random.randint(0, w - cw)
        return y0, x0, y0 + ch, x0 + cw

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        h, w = params["shape"][:2]
        box = self._random_box(h, w)
        mask = data.get("mask")
        if mask is not None and self.cat_max_ratio < 1.0:
            for _ in range(self.max_tries):
                crop = mask[box[0] : box[2], box[1] : box[3]]
                _, counts = np.unique(crop[crop != self.ignore_index], return_counts=True)
                if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                    break
                box = self._random_box(h, w)
        return {"box": box}

    def apply(self, img: np.ndarray, box: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        return np.ascontiguousarray(img[box[0] : box[2], box[1] : box[3]])

    def apply_to_mask(self, mask: np.ndarray, box: tuple[int, int, int, int], **params: Any):
        return np.ascontiguousarray(mask[box[0] : box[2], box[1] : box[3]])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("crop_size", "cat_max_ratio", "ignore_index", "max_tries")


class PhotoMetricDistortion(A.ImageOnlyTransform):
    """mmseg ``PhotoMetricDistortion``: each with probability 1/2, brightness ±``brightness_delta``,
    contrast ×U(contrast_range) (before or after the HSV part, at random), saturation
    ×U(saturation_range), hue ±``hue_delta`` (OpenCV's 0–180 hue). Works on uint8 RGB."""

    def __init__(
        self,
        brightness_delta: int = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: int = 18,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta

    def get_params(self) -> dict[str, Any]:
        r = self.py_random
        return {
            "brightness": r.uniform(-self.brightness_delta, self.brightness_delta)
            if r.random() < 0.5
            else None,
            "contrast_first": r.random() < 0.5,
            "contrast": r.uniform(*self.contrast_range) if r.random() < 0.5 else None,
            "saturation": r.uniform(*self.saturation_range) if r.random() < 0.5 else None,
            "hue": r.randint(-self.hue_delta, self.hue_delta) if r.random() < 0.5 else None,
        }

    def apply(
        self,
        img: np.ndarray,
        brightness: float | None,
        contrast_first: bool,
        contrast: float | None,
        saturation: float | None,
        hue: int | None,
        **params: Any,
    ) -> np.ndarray:
        out = img.astype(np.float32)
        if brightness is not None:
            out = np.clip(out + brightness, 0, 255)
        if contrast is not None and contrast_first:
            out = np.clip(out * contrast, 0, 255)
        if saturation is not None or hue is not None:
            hsv = cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
            if saturation is not None:
                hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
            if hue is not None:
                hsv[..., 0] = (hsv[..., 0] + hue) % 180
            out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        if contrast is not None and not contrast_first:
            out = np.clip(out * contrast, 0, 255)
        return out.astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness_delta", "contrast_range", "saturation_range", "hue_delta")


class ResizeImageOnly(A.ImageOnlyTransform):
    """Resize the image to ``scale`` keeping its ratio; the label is left at full resolution."""

    def __init__(self, scale: Sequence[int], p: float = 1.0) -> None:
        super().__init__(p=p)
        self.scale = tuple(int(s) for s in scale)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        h, w = rescale_size(img.shape[0], img.shape[1], self.scale)
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale",)


def build_train_transform(
    crop_size: Sequence[int],
    scale: Sequence[int],
    ratio_range: Sequence[float] = (0.5, 2.0),
    cat_max_ratio: float = 0.75,
    flip_prob: float = 0.5,
    photometric: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    ignore_index: int = 255,
) -> A.Compose:
    """The mmseg training pipeline (see module docstring). ``crop_size`` is ``(h, w)``."""
    crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
    steps: list[A.BasicTransform] = [
        RandomRescale(scale, ratio_range),
        CatMaxRatioRandomCrop((crop_h, crop_w), cat_max_ratio, ignore_index),
        A.HorizontalFlip(p=flip_prob),
    ]
    if photometric:
        steps.append(PhotoMetricDistortion())
    steps += [
        A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
        A.PadIfNeeded(
            min_height=crop_h,
            min_width=crop_w,
            position="top_left",
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=ignore_index,
        ),
        ToTensorV2(),
    ]
    return A.Compose(steps)


def build_eval_transform(
    scale: Sequence[int] | None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> A.Compose:
    """Resize the image to ``scale`` (keep ratio; ``None`` = as is), normalise; label untouched."""
    steps: list[A.BasicTransform] = [ResizeImageOnly(scale)] if scale else []
    steps += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(steps)
