"""Test-time inference modes shared by validation, ``src/eval.py``, ``src/predict.py`` and export.

Three ways to turn a network into per-pixel class scores, as the papers and mmsegmentation
evaluate (mmseg's ``EncoderDecoder.whole_inference`` / ``slide_inference`` / ``aug_test``):

- ``whole``: the image in one forward pass, logits resized to the output size.
- ``slide``: ``crop_size`` windows on a grid of ``stride`` steps whose last row/column is clamped
  to the image edge (so windows overlap more there, never pad); each window's logits are added
  into the full-size map and divided by the number of windows covering each pixel. The windows of
  the batch are run as one batch.
- multi-scale + flip (composes with either): the image is resized by each factor of ``scales``
  (keeping its ratio, relative to the evaluation-pipeline image; bilinear with half-pixel
  centres whatever ``align_corners``, as mmseg's cv2 resize of the test images) and, with ``flip``, also
  horizontally flipped; every pass's logits are resized to the output size, turned into softmax
  probabilities and averaged. "Dynamic Multi-scale Filters for Semantic Segmentation" (He et al.,
  ICCV 2019, §4.1, Table 6) and "CaC-Net: Context-adaptive Convolution Network" (Liu et al.,
  ECCV 2020, §4.1, Table 2) report such "MS + Flip" numbers; mmsegmentation's model zoo uses the
  scales 0.5, 0.75, …, 1.75.

The single-pass modes return *logits*; the multi-pass modes return *mean probabilities*. Either
way the class of the highest score is the prediction (:func:`dynaseg.metrics.predicted_labels`),
which is all the metric and the predictor use.

The mode is the ``model.inference`` config (an argument of
:class:`~dynaseg.training.module.SegmentationModule`, stored in its hyper-parameters):
``{mode: whole|slide, crop_size: [h, w] | null, stride: [h, w] | null, scales: [1.0],
flip: false, align_corners: false}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from dynaseg.config_schema import check_values, plain_values
from dynaseg.errors import ConfigError

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
"""Images ``(B, 3, h, w)`` → raw decode logits ``(B, K, h', w')`` at any (feature) resolution."""


def _pair(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    values = [value, value] if isinstance(value, int) else list(value)
    return int(values[0]), int(values[1])


@dataclass(frozen=True)
class InferenceConfig:
    """Validated ``model.inference`` settings (see the module docstring)."""

    mode: str = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    align_corners: bool = False

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> InferenceConfig:
        """Check and normalise a config dict; every error names the key and what was expected."""
        raw = dict(raw or {})
        known = {"mode", "crop_size", "stride", "scales", "flip", "align_corners"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"model.inference: unknown key(s) {unknown}; expected some of {sorted(known)}"
            )
        check_values("model.inference", plain_values(**raw))  # types and ranges
        mode = raw.get("mode") or "whole"
        crop, stride = _pair(raw.get("crop_size")), _pair(raw.get("stride"))
        if mode == "slide" and (crop is None or stride is None):
            raise ConfigError(
                "model.inference.mode=slide needs crop_size and stride, e.g. "
                "model.inference.crop_size=[769,769] model.inference.stride=[513,513]"
            )
        scales = raw.get("scales")
        scales = [1.0] if scales is None else list(scales)
        return cls(
            mode=mode,
            crop_size=crop,
            stride=stride,
            scales=tuple(float(s) for s in scales),
            flip=bool(raw.get("flip", False)),
            align_corners=bool(raw.get("align_corners", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form for hyper-parameters and metrics files."""
        d = asdict(self)
        d["crop_size"] = list(self.crop_size) if self.crop_size else None
        d["stride"] = list(self.stride) if self.stride else None
        d["scales"] = list(self.scales)
        return d

    @property
    def augmented(self) -> bool:
        """More than one pass (several scales or flip): the output is mean probabilities."""
        return self.flip or self.scales != (1.0,)

    def describe(self) -> str:
        """Short human-readable form, e.g. ``slide 769x769/513x513 + ms[0.5..1.75] + flip``."""
        text = self.mode
        if self.mode == "slide":
            text += f" {self.crop_size[0]}x{self.crop_size[1]}/{self.stride[0]}x{self.stride[1]}"
        if self.scales != (1.0,):
            text += " + ms" + str(list(self.scales))
        if self.flip:
            text += " + flip"
        return text


def resize_to(x: torch.Tensor, size: Sequence[int], align_corners: bool) -> torch.Tensor:
    """Bilinear resize of scores/images to ``size`` (no-op when already that size)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def slide_windows(
    height: int, width: int, crop: Sequence[int], stride: Sequence[int]
) -> list[tuple[int, int, int, int]]:
    """Window boxes ``(y1, y2, x1, x2)`` of mmseg's sliding-window grid.

    ``ceil((size - crop) / stride) + 1`` windows per axis; each starts at ``i * stride`` and the
    last is moved back so it ends at the image edge. An image smaller than the crop gives a single
    window of the image's size along that axis.
    """
    (crop_h, crop_w), (stride_h, stride_w) = crop, stride
    rows = max(math.ceil((height - crop_h) / stride_h), 0) + 1
    cols = max(math.ceil((width - crop_w) / stride_w), 0) + 1
    boxes = []
    for r in range(rows):
        y2 = min(r * stride_h + crop_h, height)
        y1 = max(y2 - crop_h, 0)
        for c in range(cols):
            x2 = min(c * stride_w + crop_w, width)
            x1 = max(x2 - crop_w, 0)
            boxes.append((y1, y2, x1, x2))
    return boxes


def slide_logits(
    logits_fn: LogitsFn,
    images: torch.Tensor,
    crop_size: Sequence[int],
    stride: Sequence[int],
    align_corners: bool = False,
) -> torch.Tensor:
    """Sliding-window logits at the images' size: per-window logits (resized to the window)
    summed into the full map and divided by the per-pixel window count.

    All windows of all images go through ``logits_fn`` as one batch (every window of an image has
    the same size, see :func:`slide_windows`).
    """
    b, _, h, w = images.shape
    boxes = slide_windows(h, w, crop_size, stride)
    crops = torch.cat([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in boxes])  # (N·B, 3, ., .)
    crop_logits = resize_to(logits_fn(crops), crops.shape[-2:], align_corners)
    num_classes = crop_logits.shape[1]
    summed = images.new_zeros((b, num_classes, h, w), dtype=crop_logits.dtype)
    count = images.new_zeros((1, 1, h, w), dtype=crop_logits.dtype)
    for i, (y1, y2, x1, x2) in enumerate(boxes):
        summed[:, :, y1:y2, x1:x2] += crop_logits[i * b : (i + 1) * b]
        count[:, :, y1:y2, x1:x2] += 1
    if bool((count == 0).any()):  # cannot happen with the clamped grid; guard the division
        raise RuntimeError(f"sliding windows {boxes} leave pixels of a {h}x{w} image uncovered")
    return summed / count


def single_pass_logits(
    logits_fn: LogitsFn, images: torch.Tensor, cfg: InferenceConfig
) -> torch.Tensor:
    """Logits at the images' own size, by ``whole`` or ``slide`` inference."""
    if cfg.mode == "slide":
        assert cfg.crop_size is not None and cfg.stride is not None  # checked by from_dict
        return slide_logits(logits_fn, images, cfg.crop_size, cfg.stride, cfg.align_corners)
    return resize_to(logits_fn(images), images.shape[-2:], cfg.align_corners)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of an image rescaled by ``scale`` keeping its ratio (mmcv's rounding, ``int(x + 0.5)``)."""
    return int(height * scale + 0.5), int(width * scale + 0.5)


def infer(
    logits_fn: LogitsFn,
    images: torch.Tensor,
    cfg: InferenceConfig,
    out_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Class scores ``(B, K, *out_size)`` for ``images`` ``(B, 3, H, W)`` under ``cfg``.

    Single pass (one scale 1.0, no flip): logits. Otherwise the mean over scales × {image,
    flipped image} of the softmax probabilities, each pass resized to ``out_size`` (default: the
    images' size) before the softmax, as mmseg does.
    """
    out_size = tuple(out_size) if out_size is not None else tuple(images.shape[-2:])
    if not cfg.augmented:
        return resize_to(single_pass_logits(logits_fn, images, cfg), out_size, cfg.align_corners)
    h, w = images.shape[-2:]
    total: torch.Tensor | None = None
    passes = 0
    for scale in cfg.scales:
        # the images always half-pixel (align_corners=False): mmseg rescales them with cv2's
        # bilinear resize in its test pipeline; align_corners applies to the logits only
        scaled = resize_to(images, scaled_size(h, w, scale), align_corners=False)
        for flipped in (False, True) if cfg.flip else (False,):
            x = scaled.flip(-1) if flipped else scaled
            logits = single_pass_logits(logits_fn, x, cfg)
            if flipped:
                logits = logits.flip(-1)
            probs = resize_to(logits, out_size, cfg.align_corners).float().softmax(dim=1)
            total = probs if total is None else total + probs
            passes += 1
    assert total is not None
    return total / passes
