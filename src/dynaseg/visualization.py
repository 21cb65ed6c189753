"""Figures of segmentation runs and of the dynamic heads' adaptive internals.

Every ``plot_*`` function returns a matplotlib :class:`~matplotlib.figure.Figure` built without
``pyplot`` (no display, no global figure state), so it works in training callbacks, scripts and
notebooks alike: ``fig.savefig("x.png")``, :func:`figure_to_array` for loggers, or let Jupyter
show it. The figures:

- :func:`plot_predictions` — image / ground truth / prediction overlays with a legend of class
  names, one row per image (colours: :mod:`dynaseg.palettes`, the same as predicted PNGs);
- :func:`plot_confusion_matrix` — row-normalised confusion matrix with class names;
- :func:`plot_per_class` — per-class IoU (and Acc) bar chart;
- :func:`plot_dmnet_filters` — DMNet's generated ``k×k`` filters per branch for two images side by
  side and their difference (He et al., "Dynamic Multi-scale Filters for Semantic Segmentation",
  ICCV 2019, Eq. 1: ``g_k(x)`` = 1×1 conv of the ``k×k``-pooled context);
- :func:`plot_cac_weights` — CaC-Net's spatial weighting maps ``W`` (Eq. 2) and context kernels
  ``D`` (Eq. 1) (Liu et al., "CaC-Net: Context-adaptive Convolution", ECCV 2020,
  arXiv:2004.08222);
- :func:`plot_sac_scales` — SAC's per-position scale coefficients (Zhang et al., "Scale-adaptive
  Convolutions for Scene Parsing", ICCV 2017, §3.2);
- :func:`plot_ds_offsets` — DSNet's sampling offsets as arrows and magnitude (context guided
  dynamic sampling, Eq. 2);
- :func:`plot_head_internals` picks the right one of the four for a head (:func:`internals_kind`);
- :func:`plot_run_comparison` — per-class IoU of several runs from their ``metrics.json``.

The internals come from :func:`dynaseg.models.heads.base.capture_internals`;
:func:`predict_samples` runs a model on dataset images and collects predictions and internals.
Plotting only: finding and loading a run's checkpoint is
:mod:`dynaseg.training.checkpoints`, class colours :mod:`dynaseg.palettes`.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dynaseg.errors import CheckpointNotFoundError, ConfigError
from dynaseg.palettes import overlay, palette_array

if TYPE_CHECKING:
    from dynaseg.data.base import SegmentationDataset

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(x: ArrayLike) -> np.ndarray:
    """Tensor (any device/dtype) or array → numpy array (float32 for floating tensors)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def figure_to_array(fig: Figure, dpi: int | None = None) -> np.ndarray:
    """Render ``fig`` to an RGB uint8 array ``(H, W, 3)`` (for W&B and TensorBoard images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    if dpi is not None:
        fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig: Figure, path: str | Path, dpi: int = 100, colors: int | None = 256) -> Path:
    """Write ``fig`` as PNG (parent directories created); returns the path.

    ``colors``: quantise to a palette PNG of that many colours (no dithering), which keeps
    figures with photos in them 3–4× smaller; ``None`` writes full RGBA.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if colors is None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format="png")
    rgb = Image.open(buffer).convert("RGB")
    rgb.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
    return path


def _hide_ticks(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------- predictions
def plot_predictions(
    images: Sequence[ArrayLike],
    labels: Sequence[ArrayLike],
    predictions: Sequence[ArrayLike],
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]] | None = None,
    ignore_index: int = 255,
    names: Sequence[str] | None = None,
    alpha: float = 0.6,
    panel_size: float = 2.6,
) -> Figure:
    """One row per image: the image, ground truth over it, prediction over it, and a legend of
    the classes present in either map (class names in their palette colours; black = ignored)."""
    if not (len(images) == len(labels) == len(predictions)) or not images:
        raise ValueError(
            f"plot_predictions: need as many images, labels and predictions (got {len(images)}, "
            f"{len(labels)}, {len(predictions)}), at least one"
        )
    num_classes = len(class_names)
    colours = palette_array(palette, num_classes)
    rows = len(images)
    fig = Figure(figsize=(3 * panel_size + 1.8, rows * panel_size), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    for r, (img, lab, pred) in enumerate(zip(images, labels, predictions, strict=True)):
        img, lab, pred = to_numpy(img), to_numpy(lab), to_numpy(pred)
        panels = [
            (img, names[r] if names else "image"),
            (overlay(img, lab, colours, alpha, ignore_index, num_classes), "ground truth"),
            (overlay(img, pred, colours, alpha, ignore_index, num_classes), "prediction"),
        ]
        for ax, (data, title) in zip(axes[r], panels, strict=True):
            ax.imshow(data, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            _hide_ticks(ax)
        present = np.union1d(np.unique(lab), np.unique(pred))
        handles = [
            Patch(facecolor=colours[c] / 255.0, edgecolor="k", linewidth=0.3, label=class_names[c])
            for c in present
            if 0 <= c < num_classes
        ]
        if (lab == ignore_index).any():
            handles.append(Patch(facecolor="k", label="ignored"))
        axes[r, 2].legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize=7,
            frameon=False,
            borderaxespad=0.0,
        )
    return fig


# ---------------------------------------------------------------------------- metrics
def row_normalise(confmat: ArrayLike) -> np.ndarray:
    """Each row (ground-truth class) divided by its sum; rows without pixels become NaN."""
    cm = to_numpy(confmat).astype(np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, cm / np.where(totals > 0, totals, 1), np.nan)


def plot_confusion_matrix(
    confmat: ArrayLike,
    class_names: Sequence[str],
    title: str = "confusion matrix (rows: ground truth, normalised)",
    annotate: bool | None = None,
) -> Figure:
    """Row-normalised confusion matrix (rows = ground truth, columns = prediction), in %.

    Cells are annotated with their percentage when there are at most 25 classes (``annotate``).
    """
    norm = row_normalise(confmat)
    n = norm.shape[0]
    if n != len(class_names):
        raise ValueError(f"confusion matrix is {n}×{n} but {len(class_names)} class names given")
    size = min(max(4.0, 0.45 * n + 2.0), 24.0)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(100 * norm, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="% of the ground-truth class")
    fontsize = 8 if n <= 25 else 5
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), class_names, fontsize=fontsize)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title, fontsize=10)
    if annotate if annotate is not None else n <= 25:
        for i in range(n):
            for j in range(n):
                v = norm[i, j]
                if not math.isnan(v) and v >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if v > 0.5 else "black",
                    )
    return fig


def plot_per_class(
    iou: ArrayLike,
    class_names: Sequence[str],
    acc: ArrayLike | None = None,
    title: str | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> Figure:
    """Horizontal bars of per-class IoU (and Acc) in %, the mean IoU as a dashed line.

    Classes with no value (``NaN``: absent from ground truth and prediction) are marked "n/a".
    """
    iou = to_numpy(iou).astype(np.float64)
    n = len(class_names)
    if iou.shape != (n,):
        raise ValueError(f"plot_per_class: {iou.shape[0]} IoU values for {n} class names")
    fig = Figure(figsize=(6.5, max(2.5, 0.28 * n + 1.2)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)
    colours = palette_array(palette, n) / 255.0 if palette is not None else None
    height = 0.4 if acc is not None else 0.7
    ax.barh(
        y - (height / 2 if acc is not None else 0),
        100 * np.nan_to_num(iou),
        height,
        color=colours if colours is not None else "tab:blue",
        edgecolor="k",
        linewidth=0.3,
        label="IoU",
    )
    if acc is not None:
        acc = to_numpy(acc).astype(np.float64)
        ax.barh(y + height / 2, 100 * np.nan_to_num(acc), height, color="0.75", label="Acc")
        handles = [
            Patch(facecolor="0.35" if colours is not None else "tab:blue", label="IoU"),
            Patch(facecolor="0.75", label="Acc"),
        ]
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=2,
            fontsize=8,
            frameon=False,
        )
    for i, v in enumerate(iou):
        text = "n/a" if math.isnan(v) else f"{100 * v:.1f}"
        ax.text(101, i, text, va="center", fontsize=7)
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    if not math.isnan(miou):
        ax.axvline(100 * miou, color="k", linestyle="--", linewidth=1)
    ax.set_yticks(y, class_names, fontsize=8 if n <= 40 else 5)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_title(title or f"per-class IoU in % (mIoU {100 * miou:.1f})", fontsize=10)
    return fig


def plot_run_comparison(
    runs: Mapping[str, Mapping[str, Any]], stage: str = "val", metric: str = "IoU"
) -> Figure:
    """Grouped per-class ``metric`` bars of several runs (``{run name: metrics.json content}``).

    Each run's legend entry carries its mean (``mIoU`` / ``mAcc``) of ``stage``.
    """
    if not runs:
        raise ValueError("plot_run_comparison: no runs given")
    per_run = {}
    for name, metrics in runs.items():
        stage_metrics = metrics.get(stage) or {}
        if "per_class" not in stage_metrics:
            raise ConfigError(f"run '{name}' has no '{stage}.per_class' in its metrics.json")
        per_run[name] = stage_metrics
    classes = list(next(iter(per_run.values()))["per_class"])
    n, k = len(classes), len(per_run)
    fig = Figure(figsize=(max(6.0, 0.55 * n * max(1, k / 2) + 2), 4.0), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / k
    for j, (name, m) in enumerate(per_run.items()):
        values = [m["per_class"].get(c, {}).get(metric) for c in classes]
        values = [100 * v if v is not None else 0.0 for v in values]
        mean = m.get(f"m{metric}")
        label = f"{name} (m{metric} {100 * mean:.1f})" if mean is not None else name
        ax.bar(np.arange(n) + (j - (k - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"per-class {metric} ({stage})", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def load_run_metrics(paths: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """``{run name: metrics}`` from ``metrics.json`` files or run directories holding one.

    The run name is the run directory's path relative to the common parent of all runs.
    """
    files = []
    for p in paths:
        p = Path(p)
        f = p / "metrics.json" if p.is_dir() else p
        if not f.is_file():
            raise CheckpointNotFoundError(f"no metrics.json at '{f}' (expected a training run dir)")
        files.append(f.resolve())
    dirs = [f.parent for f in files]
    common = Path(os.path.commonpath(dirs)) if len(dirs) > 1 else dirs[0].parent
    return {
        (str(d.relative_to(common)) if d != common else d.name): json.loads(f.read_text())
        for f, d in zip(files, dirs, strict=True)
    }


# ---------------------------------------------------------------------------- head internals
def _branch_keys(internals: Mapping[str, ArrayLike], suffix: str) -> list[str]:
    """Keys ``<...>.<i>.<suffix>`` sorted by branch index ``i`` (or the bare ``suffix``)."""
    keys = [k for k in internals if k == suffix or k.endswith("." + suffix)]

    def index(key: str) -> tuple[int, str]:
        parts = key.split(".")
        return (int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else 0, key)

    return sorted(keys, key=index)


def _mosaic(filters: np.ndarray, columns: int) -> np.ndarray:
    """``(C, k, k)`` filters → one image of ``columns`` tiles per row, 1-pixel NaN gaps."""
    c, k, _ = filters.shape
    rows = math.ceil(c / columns)
    out = np.full((rows * (k + 1) - 1, columns * (k + 1) - 1), np.nan, dtype=np.float32)
    for i in range(c):
        r, q = divmod(i, columns)
        out[r * (k + 1) : r * (k + 1) + k, q * (k + 1) : q * (k + 1) + k] = filters[i]
    return out


def _single(x: ArrayLike) -> np.ndarray:
    """Drop a leading batch dimension of size 1 (internals of one image)."""
    a = to_numpy(x)
    return a[0] if a.ndim >= 3 and a.shape[0] == 1 else a


def plot_dmnet_filters(
    internals_a: Mapping[str, ArrayLike],
    internals_b: Mapping[str, ArrayLike],
    images: Sequence[ArrayLike] | None = None,
    names: Sequence[str] = ("image A", "image B"),
    max_channels: int = 16,
) -> Figure:
    """DMNet's generated filters for two images side by side and their difference.

    One row per dynamic branch (filter size ``k``): the first ``max_channels`` of the ``c'``
    depthwise ``k×k`` filters ``g_k(x)`` (Eq. 1) of image A as a mosaic (channel 0 top left, row
    by row), the same channels for image B on the same colour scale, and ``A − B`` on its own
    scale. The row title gives ``‖A − B‖ / ‖A‖`` over *all* channels of the branch: how much the
    filters adapt to the image. With ``images`` the two inputs are shown in a first row.

    Args:
        internals_a, internals_b: one image's DMNet internals each
            (``capture_internals(...)["decode_head"]``, batch dimension 1 or dropped).
        images: the two RGB images, optional.
        names: titles of the two images.
        max_channels: how many filters per branch to draw.
    """
    keys = _branch_keys(internals_a, "filters")
    if not keys:
        raise ValueError(
            "plot_dmnet_filters: no '*.filters' in the internals (a DMNet head with "
            "filter_type='dynamic' records them inside capture_internals)"
        )
    missing = [k for k in keys if k not in internals_b]
    if missing:
        raise ValueError(f"plot_dmnet_filters: image B lacks {missing}")
    rows = len(keys) + (1 if images is not None else 0)
    fig = Figure(figsize=(9.0, 2.7 * rows), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    r0 = 0
    if images is not None:
        for ax, img, name in zip(axes[0, :2], images, names, strict=False):
            ax.imshow(to_numpy(img))
            ax.set_title(name, fontsize=9)
            _hide_ticks(ax)
        axes[0, 2].axis("off")
        r0 = 1
    for r, key in enumerate(keys, start=r0):
        fa, fb = _single(internals_a[key]), _single(internals_b[key])  # (c', k, k)
        if fa.ndim != 3 or fa.shape != fb.shape:
            raise ValueError(f"plot_dmnet_filters: '{key}' shapes {fa.shape} and {fb.shape}")
        c, k = fa.shape[0], fa.shape[-1]
        shown = min(max_channels, c)
        columns = max(1, math.ceil(math.sqrt(shown)))
        diff = fa - fb
        rel = float(np.linalg.norm(diff) / max(np.linalg.norm(fa), 1e-12))
        scale = float(max(np.abs(fa[:shown]).max(), np.abs(fb[:shown]).max(), 1e-12))
        dscale = float(max(np.abs(diff[:shown]).max(), 1e-12))
        panels = [
            (fa[:shown], scale, f"{names[0]}"),
            (fb[:shown], scale, f"{names[1]}"),
            (diff[:shown], dscale, "A − B"),
        ]
        for q, (data, vmax, title) in enumerate(panels):
            ax = axes[r, q]
            im = ax.imshow(
                _mosaic(data, columns),
                cmap="RdBu_r",
                vmin=-vmax,
                vmax=vmax,
                interpolation="nearest",
            )
            fig.colorbar(im, ax=ax, shrink=0.8)
            _hide_ticks(ax)
            ax.set_title(title, fontsize=8)
        branch = key.rsplit(".", 1)[0]
        axes[r, 0].set_ylabel(
            f"{k}×{k} ({branch})\n‖A−B‖/‖A‖ = {rel:.2f}\nchannels 0–{shown - 1} of {c}",
            fontsize=8,
        )
    fig.suptitle("DMNet generated filters g_k(x) (Eq. 1), per branch", fontsize=10)
    return fig


def _heat_panel(
    fig: Figure, ax: Any, data: np.ndarray, shape: tuple[int, int], title: str, cmap: str, **kw: Any
) -> None:
    """Draw a feature-resolution map stretched over an image of ``shape`` (H, W)."""
    h, w = shape
    im = ax.imshow(data, cmap=cmap, extent=(0, w, h, 0), interpolation="bilinear", **kw)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=8)
    _hide_ticks(ax)


def _image_shape(image: ArrayLike | None, fmap: np.ndarray) -> tuple[int, int]:
    return tuple(to_numpy(image).shape[:2]) if image is not None else tuple(fmap.shape[-2:])


def plot_cac_weights(internals: Mapping[str, ArrayLike], image: ArrayLike | None = None) -> Figure:
    """CaC-Net's adaptive internals for one image, one row per CaC module (head ``i``):

    the spatial weighting ``W`` of Eq. (2) (``Σ_d σ(X ⊛_d D)``, averaged over channels), its
    spread over channels (std), and the context kernel ``D`` of Eq. (1) (after BN, averaged over
    channels), which is one ``s×s`` kernel per image computed from all positions.
    """
    keys = _branch_keys(internals, "weights")
    if not keys:
        raise ValueError("plot_cac_weights: no '*.weights' in the internals (a CaC-Net head)")
    fig = Figure(figsize=(12.0, 2.9 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 4, squeeze=False)
    for r, key in enumerate(keys):
        w = _single(internals[key])  # (c, h, w)
        shape = _image_shape(image, w)
        ax = axes[r, 0]
        if image is not None:
            ax.imshow(to_numpy(image))
            ax.set_title("image", fontsize=8)
        else:
            ax.axis("off")
        _hide_ticks(ax)
        branch = key.rsplit(".", 1)[0]
        _heat_panel(fig, axes[r, 1], w.mean(0), shape, f"{branch}: W, channel mean", "magma")
        _heat_panel(fig, axes[r, 2], w.std(0), shape, "W, std over channels", "viridis")
        kernel_key = f"{branch}.kernel"
        ax = axes[r, 3]
        if kernel_key in internals:
            d = _single(internals[kernel_key]).mean(0)  # (s, s)
            v = float(max(np.abs(d).max(), 1e-12))
            im = ax.imshow(d, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"kernel D ({d.shape[0]}×{d.shape[1]}), channel mean", fontsize=8)
            _hide_ticks(ax)
        else:
            ax.axis("off")
    fig.suptitle("CaC-Net spatial weighting W (Eq. 2) and context kernel D (Eq. 1)", fontsize=10)
    return fig


def plot_sac_scales(internals: Mapping[str, ArrayLike], image: ArrayLike | None = None) -> Figure:
    """SAC's scale coefficients for one image: the map ``s`` regressed per output position
    (§3.2; ``s > 1`` widens the receptive field, ``s < 1`` shrinks it) and its histogram."""
    if "scale" not in internals:
        raise ValueError("plot_sac_scales: no 'scale' in the internals (a SAC head)")
    s = _single(internals["scale"])
    s = s[0] if s.ndim == 3 else s  # (h, w)
    shape = _image_shape(image, s)
    fig = Figure(figsize=(10.0, 3.0), layout="constrained")
    axes = fig.subplots(1, 3)
    if image is not None:
        axes[0].imshow(to_numpy(image))
        axes[0].set_title("image", fontsize=8)
    else:
        axes[0].axis("off")
    _hide_ticks(axes[0])
    _heat_panel(
        fig, axes[1], s, shape, f"scale s (min {s.min():.2f}, max {s.max():.2f})", "coolwarm"
    )
    axes[2].hist(s.ravel(), bins=30, color="tab:purple")
    axes[2].set_xlabel("scale coefficient s")
    axes[2].set_title("distribution over positions", fontsize=8)
    fig.suptitle("SAC scale maps (§3.2)", fontsize=10)
    return fig


def plot_ds_offsets(
    internals: Mapping[str, ArrayLike], image: ArrayLike | None = None, arrows: int = 16
) -> Figure:
    """DSNet's sampling offsets for one image: the mean displacement of the ``k×k`` taps as arrows
    (on an ``arrows × arrows`` grid, in feature pixels, drawn to image scale) and the mean offset
    magnitude per position (how far the sampling points leave the regular grid, Eq. 2)."""
    if "offsets" not in internals:
        raise ValueError("plot_ds_offsets: no 'offsets' in the internals (a DSNet head)")
    off = _single(internals["offsets"])  # (2·k·k, h, w), (dy, dx) per tap
    taps = off.shape[0] // 2
    dy, dx = off[0::2], off[1::2]
    magnitude = np.sqrt(dy**2 + dx**2).mean(0)
    mean_dy, mean_dx = dy.mean(0), dx.mean(0)
    h, w = off.shape[-2:]
    shape = _image_shape(image, off)
    sy, sx = shape[0] / h, shape[1] / w
    fig = Figure(figsize=(8.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    ax = axes[0]
    if image is not None:
        ax.imshow(to_numpy(image))
    else:
        ax.imshow(np.ones((*shape, 3)))
    step_y, step_x = max(1, h // arrows), max(1, w // arrows)
    ys, xs = np.mgrid[step_y // 2 : h : step_y, step_x // 2 : w : step_x]
    ax.quiver(
        (xs + 0.5) * sx,
        (ys + 0.5) * sy,
        mean_dx[ys, xs] * sx,
        mean_dy[ys, xs] * sy,
        color="yellow",
        angles="xy",
        scale_units="xy",
        scale=1,
        width=0.006,
    )
    ax.set_title(f"mean offset of the {taps} taps (arrows)", fontsize=8)
    ax.set_xlim(0, shape[1])
    ax.set_ylim(shape[0], 0)
    _hide_ticks(ax)
    _heat_panel(fig, axes[1], magnitude, shape, "mean |offset| (feature px)", "inferno")
    fig.suptitle("DSNet dynamic sampling offsets (Eq. 2)", fontsize=10)
    return fig


def internals_kind(internals: Mapping[str, ArrayLike]) -> str | None:
    """Which head recorded ``internals`` (one image's): ``"dmnet_filters"``, ``"cac_weights"``,
    ``"sac_scales"``, ``"ds_offsets"``, or ``None`` for a head that records nothing."""
    if _branch_keys(internals, "filters"):
        return "dmnet_filters"
    if _branch_keys(internals, "weights"):
        return "cac_weights"
    if "scale" in internals:
        return "sac_scales"
    if "offsets" in internals:
        return "ds_offsets"
    return None


def plot_head_internals(
    internals: Sequence[Mapping[str, ArrayLike]],
    images: Sequence[ArrayLike] | None = None,
    names: Sequence[str] | None = None,
) -> Figure | None:
    """The figure that fits a head's recorded internals (:func:`internals_kind`): DMNet filters
    (compares the first two images), CaC-Net weights, SAC scales or DSNet offsets (first image).

    ``internals``: one head's internals per image. Returns ``None`` for a head that records
    nothing (FCN, ASPP, PSP, Inception, DMNet with fixed filters).
    """
    kind = internals_kind(internals[0]) if internals else None
    image = images[0] if images else None
    if kind == "dmnet_filters":
        if len(internals) < 2:
            raise ValueError("plot_head_internals: DMNet's filter view compares two images")
        return plot_dmnet_filters(
            internals[0],
            internals[1],
            images[:2] if images else None,
            names=tuple(names[:2]) if names else ("image A", "image B"),
        )
    if kind == "cac_weights":
        return plot_cac_weights(internals[0], image)
    if kind == "sac_scales":
        return plot_sac_scales(internals[0], image)
    if kind == "ds_offsets":
        return plot_ds_offsets(internals[0], image)
    return None


# ---------------------------------------------------------------------------- running a model
@dataclass
class Sample:
    """One dataset image run through a model: raw RGB image, labels, prediction, internals."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8, as loaded (before normalisation)
    label: np.ndarray  # (H, W) int64, ignore_index where unlabelled
    prediction: np.ndarray  # (H, W) int64
    internals: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


@torch.no_grad()
def predict_samples(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    indices: Sequence[int],
    capture: bool = False,
) -> list[Sample]:
    """Run ``model`` (eval mode, whole image, one image at a time) on ``dataset[indices]``.

    The prediction is at the label's size (the logits are resized to it, as in evaluation).
    With ``capture`` each sample also holds the heads' adaptive internals
    (:func:`~dynaseg.models.heads.base.capture_internals`, on the CPU, batch dimension dropped).
    """
    from torch.utils.data import default_collate

    from dynaseg.models.heads.base import capture_internals

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    net = getattr(model, "net", model)
    samples = []
    try:
        for i in indices:
            item = dataset[int(i)]
            raw_image, _ = dataset.load(int(i))
            label = item["label"]
            images = item["image"].unsqueeze(0).to(device)
            # the per-image inputs a head reads (the zoom oracle's zoom), batched as a loader would
            scene = {
                k: default_collate([item[k]]).to(device) for k in getattr(net, "scene_inputs", ())
            }
            extra = {"scene": scene} if scene else {}
            internals: dict[str, dict[str, torch.Tensor]] = {}
            if capture:
                with capture_internals(net) as recorded:
                    logits = model(images, tuple(label.shape[-2:]), **extra)
                internals = {
                    head: {k: v[0].cpu() for k, v in values.items()}
                    for head, values in recorded.items()
                }
            else:
                logits = model(images, tuple(label.shape[-2:]), **extra)
            samples.append(
                Sample(
                    name=item.get("name", str(i)),
                    image=raw_image,
                    label=label.numpy().astype(np.int64),
                    prediction=logits.argmax(1)[0].cpu().numpy().astype(np.int64),
                    internals=internals,
                )
            )
    finally:
        model.train(was_training)
    return samples


def evenly_spaced(n: int, total: int) -> list[int]:
    """``n`` indices spread over ``range(total)`` (first and last included)."""
    if total <= 0 or n <= 0:
        return []
    if n >= total:
        return list(range(total))
    return sorted({round(i * (total - 1) / max(n - 1, 1)) for i in range(n)})
