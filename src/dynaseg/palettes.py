"""Class colours: one palette per run, one fallback, one way to colour a label map.

Where a run's colours come from (:func:`model_palette`): the checkpoint's ``palette``
hyper-parameter (written from the dataset module at training time), else the dataset class's
``PALETTE``, else the PASCAL VOC colour map (:func:`voc_colormap`, mmsegmentation's and the VOC
devkit's bit-interleaved map). Predicted PNGs (:mod:`dynaseg.run.prediction`), notebook figures and
logged images (:mod:`dynaseg.visualization`) all colour through :func:`colorize` and
:func:`overlay`, so the same checkpoint looks the same everywhere; label PNGs that keep the class
indices (predictions, prepared datasets, test fixtures) are written by :func:`indexed_image`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from dynaseg.errors import ConfigError

Colour = tuple[int, int, int]
IGNORE_COLOUR = (0, 0, 0)


def voc_colormap(n: int = 256) -> list[Colour]:
    """The standard PASCAL VOC colour map (bit-interleaved); entry 255 is the boundary colour."""
    cmap = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap.append((r, g, b))
    return cmap


def _colours(palette: Sequence[Sequence[int]]) -> list[Colour]:
    return [(int(c[0]), int(c[1]), int(c[2])) for c in palette]


def model_palette(model: Any, dataset: Any = None) -> tuple[list[Colour], str]:
    """The class colours of a model (a :class:`~dynaseg.training.module.SegmentationModule` or
    anything with ``hparams.num_classes``) and where they came from: the checkpoint's
    ``hparams.palette`` when it has one colour per class, else ``dataset``'s ``PALETTE`` (a dataset
    instance or class), else :func:`voc_colormap`."""
    hparams = getattr(model, "hparams", {}) or {}
    num_classes = int(hparams["num_classes"])
    stored = hparams.get("palette")
    if stored is not None and len(stored) == num_classes:
        return _colours(stored), "checkpoint"
    dataset_palette = getattr(dataset, "PALETTE", None) or ()
    if len(dataset_palette) == num_classes:
        cls = dataset if isinstance(dataset, type) else type(dataset)
        return _colours(dataset_palette), f"{cls.__module__}.{cls.__qualname__}"
    return voc_colormap(num_classes), "generated (PASCAL VOC colour map)"


def palette_array(
    palette: Sequence[Sequence[int]] | np.ndarray | None, num_classes: int
) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours: ``palette``, or :func:`voc_colormap` if none."""
    if palette is None or len(palette) == 0:
        return np.asarray(voc_colormap(num_classes), dtype=np.uint8).reshape(num_classes, 3)
    colours = np.asarray(palette, dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) < num_classes:
        raise ConfigError(
            f"palette must give one RGB triple per class ({num_classes}), got shape "
            f"{tuple(colours.shape)}"
        )
    return colours[:num_classes].clip(0, 255).astype(np.uint8)


def indexed_image(label: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """A palette ("P") image of a uint8 class-index map: pixel values stay the indices, ``palette``
    (at most 256 RGB triples, padded with black to 256) colours them in image viewers."""
    if len(palette) > 256:
        raise ConfigError(f"a palette image holds at most 256 colours, got {len(palette)}")
    img = Image.fromarray(np.asarray(label).astype(np.uint8))
    flat = [int(v) for colour in palette for v in colour[:3]]
    img.putpalette(flat + [0] * (768 - len(flat)))  # makes the "L" image a "P" image
    return img


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colorize(
    label: np.ndarray | torch.Tensor,
    palette: Sequence[Sequence[int]] | np.ndarray | None,
    ignore_index: int = 255,
    num_classes: int | None = None,
) -> np.ndarray:
    """Label map ``(H, W)`` of class indices → RGB ``(H, W, 3)`` uint8 in the palette's colours.

    Pixels equal to ``ignore_index`` (or outside the palette) are black.
    """
    lab = _numpy(label).astype(np.int64)
    if num_classes is None:
        num_classes = (
            len(palette)
            if palette is not None and len(palette) > 0
            else int(lab[lab != ignore_index].max(initial=0)) + 1
        )
    colours = palette_array(palette, num_classes)
    valid = (lab >= 0) & (lab < num_classes) & (lab != ignore_index)
    out = np.zeros((*lab.shape, 3), np.uint8)
    out[:] = IGNORE_COLOUR
    out[valid] = colours[lab[valid]]
    return out


def overlay(
    image: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    palette: Sequence[Sequence[int]] | np.ndarray | None,
    alpha: float = 0.6,
    ignore_index: int = 255,
    num_classes: int | None = None,
) -> np.ndarray:
    """Blend the colourised ``label`` over an RGB uint8 ``image`` (weight ``alpha`` on the
    colours); ignored pixels show the image."""
    img = _numpy(image).astype(np.float32)
    lab = _numpy(label)
    coloured = colorize(lab, palette, ignore_index, num_classes).astype(np.float32)
    keep = (lab == ignore_index)[..., None]
    blended = np.where(keep, img, (1 - alpha) * img + alpha * coloured)
    return blended.round().clip(0, 255).astype(np.uint8)
