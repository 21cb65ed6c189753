"""Figures of the dynamic heads' adaptive internals: DMNet's generated filters, CaC-Net's
weights, SAC's scales, DSNet's offsets (the package docstring, :mod:`dynaseg.visualization`,
cites the papers and equations)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    pass

from dynaseg.visualization.figures import ArrayLike, _hide_ticks, to_numpy


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
