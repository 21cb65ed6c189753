"""Figures of runs: saving, prediction overlays, confusion matrix, per-class IoU, run comparison
(the package docstring, :mod:`dynaseg.visualization`, lists them)."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dynaseg.errors import CheckpointNotFoundError, ConfigError
from dynaseg.palettes import overlay, palette_array

if TYPE_CHECKING:
    pass

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
