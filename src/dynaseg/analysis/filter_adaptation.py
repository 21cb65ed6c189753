"""Do DMNet's generated filters adapt to the image, and to its scale?

DMNet (He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019) §3.2–3.3:
each Dynamic Convolutional Module generates depthwise filters ``g_k(x) ∈ R^{k×k×c'}`` from the
image's own pooled context, "to capture a specific scale representation related to input image".
Two measurable consequences:

- **variation between images**: the share of filter energy not explained by the mean filter over
  images, ``Σ_i ‖f_i − f̄‖² / Σ_i ‖f_i‖²`` (:func:`unexplained_energy`); 0 means the generator
  has learnt one fixed filter, 1 a filter with zero mean over images.
- **scale adaptation as a change of shape**: the spatial spread of each image's filters, the
  second moment of ``|f|`` about the centre tap, ``Σ_p |f(p)| ‖p‖² / Σ_p |f(p)|`` averaged over
  channels (:func:`spatial_spread`, in taps²), should grow with the scene zoom if the filters
  follow the objects' scale. :func:`spearman_ci` gives Spearman's ρ between spread and zoom with a
  percentile bootstrap confidence interval over images. What it cannot see: a zoom carried by a
  per-channel gain or sign leaves ``|f|``'s distribution over the taps unchanged (filters whose
  gain encodes the zoom perfectly have ρ ≈ 0).
- **scale information, in any form**: the cross-validated R² of the log zoom decoded from an
  image's filters by ridge regression (:func:`decoding_r2`), against the same decoded from the
  image's pooled backbone features (:func:`collect_pooled_features`: the upper bound of what the
  generator's input holds) and from the filters of a head trained without zoom variation (the
  null). A gain, a sign, a shape: any linear code of the zoom shows.

:func:`collect_filters` runs a network over batches and stacks the recorded filters
(:func:`dynaseg.models.heads.base.capture_internals`); :func:`plot_spread_vs_zoom` draws the
figure. Nothing here loads checkpoints or training code: the script that does is
``scripts/filter_adaptation.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats

from dynaseg.models.heads.base import capture_internals
from dynaseg.seed_stats import adjust_family, paired_difference

FILTERS_SUFFIX = ".filters"
DECODING_FOLDS = 5
# ridge penalties tried, × the number of features (docs/ablations.md, Evidence round 2, E5)
DECODING_PENALTIES = tuple(10.0**e for e in range(-3, 5))


def unexplained_energy(filters: np.ndarray) -> float:
    """Share of the filters' energy not explained by their mean over images.

    Args:
        filters: ``(N, ...)`` one generated filter bank per image.
    """
    f = np.asarray(filters, dtype=np.float64).reshape(len(filters), -1)
    if len(f) < 2:
        raise ValueError(f"unexplained_energy: need filters of >= 2 images, got {len(f)}")
    total = float((f**2).sum())
    if total == 0:
        raise ValueError("unexplained_energy: all filters are zero")
    return float(((f - f.mean(0)) ** 2).sum() / total)


def spatial_spread(filters: np.ndarray) -> np.ndarray:
    """Second moment of ``|f|`` about the centre tap, per image, averaged over channels.

    Args:
        filters: ``(N, C, k, k)``.

    Returns:
        ``(N,)`` spreads in taps² (0 for ``k = 1``; ``(k²−1)/6`` for a uniform ``k×k`` filter).
    """
    f = np.abs(np.asarray(filters, dtype=np.float64))
    if f.ndim != 4 or f.shape[-1] != f.shape[-2]:
        raise ValueError(f"spatial_spread: filters must be (N, C, k, k), got {f.shape}")
    k = f.shape[-1]
    r = np.arange(k) - (k - 1) / 2
    dist2 = r[:, None] ** 2 + r[None, :] ** 2
    mass = f.sum((-2, -1))
    moment = (f * dist2).sum((-2, -1)) / np.where(mass > 0, mass, 1.0)
    return moment.mean(1)


@dataclass(frozen=True)
class Correlation:
    """Spearman's ρ with a percentile bootstrap CI (``level``) over ``n`` paired observations."""

    rho: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def __str__(self) -> str:
        pct = round(100 * self.level)
        return f"ρ = {self.rho:+.2f} [{self.low:+.2f}, {self.high:+.2f}] ({pct} % CI, n = {self.n})"


def spearman_ci(
    x: np.ndarray, y: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> Correlation:
    """Spearman's rank correlation of ``x`` and ``y`` with a bootstrap CI (resampling pairs)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 4:
        raise ValueError(
            f"spearman_ci: need two 1-d arrays of equal length >= 4, got {x.shape}, {y.shape}"
        )
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    denom = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    boot = (rx * ry).sum(1) / np.where(denom > 0, denom, np.nan)
    boot = boot[np.isfinite(boot)]
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return Correlation(rho, float(low), float(high), len(x), level)


@torch.no_grad()
def collect_filters(
    net: torch.nn.Module, batches: Iterable[torch.Tensor], head: str = "decode_head"
) -> dict[str, np.ndarray]:
    """Run ``net`` (eval mode) over image batches; stack each DMNet branch's generated filters.

    Returns:
        ``{"dcm_modules.<i>.filters": (N, c', k, k)}`` over all images, in batch order.
    """
    was_training = net.training
    net.eval()
    stacked: dict[str, list[np.ndarray]] = {}
    try:
        for images in batches:
            with capture_internals(net) as recorded:
                net(images)
            found = {k: v for k, v in recorded.get(head, {}).items() if k.endswith(FILTERS_SUFFIX)}
            if not found:
                raise ValueError(
                    f"collect_filters: head '{head}' recorded no '*{FILTERS_SUFFIX}'; the network "
                    "must have a DMNet head with filter_type='dynamic'"
                )
            for k, v in found.items():
                stacked.setdefault(k, []).append(v.detach().cpu().numpy())
    finally:
        net.train(was_training)
    return {k: np.concatenate(v) for k, v in stacked.items()}


def plot_spread_vs_zoom(
    spreads: Mapping[str, np.ndarray],
    zooms: np.ndarray,
    correlations: Mapping[str, Correlation],
    title: str = "",
) -> Figure:
    """One panel per branch: each image's filter spread against its scene zoom (log axis)."""
    fig = Figure(figsize=(3.2 * len(spreads), 3.0), layout="constrained")
    axes = fig.subplots(1, len(spreads), squeeze=False)[0]
    for ax, (name, spread) in zip(axes, spreads.items(), strict=True):
        ax.scatter(zooms, spread, s=6, alpha=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("scene zoom")
        ax.set_ylabel("filter spread (taps²)")
        ax.set_title(f"{name}\n{correlations[name]}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _loo_penalty(x: np.ndarray, y: np.ndarray, penalties: Sequence[float]) -> float:
    """The penalty of ``penalties`` with the smallest leave-one-out squared error of the ridge
    fit of centred ``y`` on centred ``x`` (closed form: residual / (1 − leverage), the leverage
    including the intercept's ``1/n``)."""
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    uy = u.T @ y
    n = len(y)
    best, best_err = penalties[0], np.inf
    for alpha in penalties:
        shrink = sv**2 / (sv**2 + alpha)
        residual = y - u @ (shrink * uy)
        leverage = (u**2 * shrink).sum(1) + 1.0 / n
        err = float(np.mean((residual / (1.0 - leverage)) ** 2))
        if err < best_err:
            best, best_err = alpha, err
    return best


def decoding_r2(
    features: np.ndarray,
    target: np.ndarray,
    folds: int = DECODING_FOLDS,
    penalties: Sequence[float] = DECODING_PENALTIES,
) -> float:
    """Cross-validated R² of ``target`` decoded from ``features`` by ridge regression.

    The decoder of docs/ablations.md (Evidence round 2, E5), fixed before the runs: image ``i`` is
    in fold ``i mod folds``; on the training folds the features are standardised (a constant
    feature is dropped) and the ridge penalty is the one of ``penalties × n_features`` with the
    smallest leave-one-out error (:func:`_loo_penalty`); ``R² = 1 − Σ (y − ŷ)² / Σ (y − ȳ)²`` over
    the out-of-fold predictions ``ŷ`` (negative when the decoder does worse than the mean).

    Args:
        features: ``(N, ...)`` per image (flattened), e.g. its generated filters.
        target: ``(N,)`` e.g. the log zoom of each image.
    """
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(target, dtype=np.float64)
    if y.shape != (len(x),) or len(x) < 2 * folds:
        raise ValueError(
            f"decoding_r2: need one target per image and >= {2 * folds} images, got features "
            f"{x.shape}, target {y.shape}"
        )
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        raise ValueError("decoding_r2: the target is constant (e.g. every zoom 1): R² undefined")
    fold = np.arange(len(y)) % folds
    predicted = np.empty_like(y)
    for k in range(folds):
        train, test = fold != k, fold == k
        mean, sd = x[train].mean(0), x[train].std(0)
        keep = sd > 0
        xt = (x[train][:, keep] - mean[keep]) / sd[keep]
        xs = (x[test][:, keep] - mean[keep]) / sd[keep]
        yt = y[train] - y[train].mean()
        if xt.shape[1] == 0:
            predicted[test] = y[train].mean()
            continue
        alpha = _loo_penalty(xt, yt, [a * xt.shape[1] for a in penalties])
        u, sv, vt = np.linalg.svd(xt, full_matrices=False)
        weights = vt.T @ ((sv / (sv**2 + alpha)) * (u.T @ yt))
        predicted[test] = y[train].mean() + xs @ weights
    return float(1.0 - ((y - predicted) ** 2).sum() / total)


def permuted_decoding_r2(features: np.ndarray, target: np.ndarray, seed: int = 0) -> float:
    """:func:`decoding_r2` with the target permuted over images: a decoder that is not
    overfitting gives ≈ 0 or below (the protocol reads no R² whose permuted value is ≥ 0.1)."""
    y = np.asarray(target, dtype=np.float64)
    return decoding_r2(features, np.random.default_rng(seed).permutation(y))


@torch.no_grad()
def collect_pooled_features(
    net: torch.nn.Module, batches: Iterable[torch.Tensor], index: int = 4
) -> np.ndarray:
    """Backbone feature ``index`` of each image, average-pooled over space: ``(N, C)``.

    ``index`` 4 is layer 4 ("Stage 5"), the input DMNet's generators pool from; the decoding R²
    from it bounds what a filter generated from it can carry.
    """
    was_training = net.training
    net.eval()
    pooled = []
    try:
        for images in batches:
            pooled.append(net.extract_features(images)[index].mean((-2, -1)).cpu().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(pooled)


def flat_filters(filters: Mapping[str, np.ndarray]) -> np.ndarray:
    """Every branch's filters of an image in one row: ``(N, Σ c'·k²)``."""
    return np.concatenate([f.reshape(len(f), -1) for f in filters.values()], axis=1)


def zoom_decoding(
    net: torch.nn.Module,
    images: Callable[[], Iterable[torch.Tensor]],
    zooms: np.ndarray,
    null_net: torch.nn.Module | None = None,
) -> dict[str, float | dict[str, float]]:
    """The decoding measure of docs/ablations.md (Evidence round 2, E5) for one dynamic run.

    Cross-validated R² (:func:`decoding_r2`) of ``log zooms`` from each image's generated filters
    (all branches: ``filters``; each branch: ``filters_by_branch``), from its context feature
    (the head's ``context_index``) average-pooled (``pooled_features``, the upper bound), each
    also with the zooms permuted (``*_permuted``, ≈ 0 unless the decoder overfits), and from the
    filters ``null_net`` generates for the same images (``null_filters``: a head trained without
    zoom variation).

    Args:
        images: returns a fresh iterable of image batches (the same images, in the order of
            ``zooms``) for each pass.
    """
    target = np.log(np.asarray(zooms, dtype=np.float64))
    filters = collect_filters(net, images())
    context = getattr(getattr(net, "decode_head", None), "context_index", 4)
    pooled = collect_pooled_features(net, images(), context)
    out: dict[str, float | dict[str, float]] = {
        "filters": decoding_r2(flat_filters(filters), target),
        "filters_permuted": permuted_decoding_r2(flat_filters(filters), target),
        "filters_by_branch": {k: decoding_r2(f, target) for k, f in filters.items()},
        "pooled_features": decoding_r2(pooled, target),
        "pooled_features_permuted": permuted_decoding_r2(pooled, target),
    }
    if null_net is not None:
        null = collect_filters(null_net, images())
        out["null_filters"] = decoding_r2(flat_filters(null), target)
        out["null_filters_by_branch"] = {k: decoding_r2(f, target) for k, f in null.items()}
    return out


ENCODES_R2 = 0.5  # protocol E5: the filters encode the zoom iff the mean R² over seeds ≥ this
OVERFIT_R2 = 0.1  # a permuted-zoom R² at or above this voids the decoder's numbers


def decoding_verdict(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Protocol E5's decision over the seeds of one condition.

    Args:
        runs: one :func:`zoom_decoding` result per seed, each with ``"seed"`` and
            ``null_filters`` (from its zoom-fixed run of the same seed).

    Returns ``encodes`` (mean R² of the filters ≥ :data:`ENCODES_R2`), ``adapts`` (R² of the
    filters − R² of the null resolved > 0 by the paired t test over seeds at α = 0.05),
    ``difference`` (its :class:`~dynaseg.seed_stats.PairedDifference`), ``branches`` (the same
    per branch, Holm across the branches), ``overfitting`` (some permuted R² ≥
    :data:`OVERFIT_R2`: nothing else is to be read), and ``mean_share``: the mean of R² filters /
    R² pooled features.
    """
    if len(runs) < 2 or any("null_filters" not in r for r in runs):
        raise ValueError("decoding_verdict: need >= 2 runs, each decoded with its null run")
    seed = [str(r["seed"]) for r in runs]
    filters = dict(zip(seed, (float(r["filters"]) for r in runs), strict=True))
    null = dict(zip(seed, (float(r["null_filters"]) for r in runs), strict=True))
    difference = paired_difference(filters, null)
    adjust_family([difference])
    branch_names = list(runs[0]["filters_by_branch"])
    branches = {
        name: paired_difference(
            {s: r["filters_by_branch"][name] for s, r in zip(seed, runs, strict=True)},
            {s: r["null_filters_by_branch"][name] for s, r in zip(seed, runs, strict=True)},
        )
        for name in branch_names
    }
    adjust_family(list(branches.values()))
    permuted = [float(r[k]) for r in runs for k in ("filters_permuted", "pooled_features_permuted")]
    return {
        "encodes": float(np.mean(list(filters.values()))) >= ENCODES_R2,
        "adapts": difference.resolved and (difference.mean or 0.0) > 0,
        "difference": difference,
        "branches": branches,
        "overfitting": max(permuted) >= OVERFIT_R2,
        "mean_share": float(
            np.mean([float(r["filters"]) / float(r["pooled_features"]) for r in runs])
        ),
    }
