"""Filter-adaptation measures on constructed filters with known answers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dynaseg.analysis.filter_adaptation import (
    collect_filters,
    collect_pooled_features,
    decoding_r2,
    decoding_verdict,
    permuted_decoding_r2,
    spatial_spread,
    spearman_ci,
    unexplained_energy,
)
from dynaseg.models.heads.dmnet import DMHead
from dynaseg.seed_stats import holm


def gaussian_filters(sigmas: np.ndarray, k: int = 7, channels: int = 4) -> np.ndarray:
    r = np.arange(k) - (k - 1) / 2
    d2 = r[:, None] ** 2 + r[None, :] ** 2
    g = np.exp(-d2[None] / (2 * sigmas[:, None, None] ** 2))
    return np.repeat(g[:, None], channels, 1)


def test_unexplained_energy_known_cases() -> None:
    same = np.ones((5, 3, 3, 3))
    assert unexplained_energy(same) == 0.0
    # mean filter m plus ±d (orthogonal to m) on alternate images: share ‖d‖² / (‖m‖² + ‖d‖²)
    m = np.zeros((2, 3, 3))
    m[0, 1, 1] = 3.0
    d = np.zeros((2, 3, 3))
    d[1, 0, 0] = 1.0
    filters = np.stack([m + d, m - d, m + d, m - d])
    assert unexplained_energy(filters) == pytest.approx(1 / 10)
    with pytest.raises(ValueError, match=">= 2 images"):
        unexplained_energy(filters[:1])


def test_spatial_spread_known_cases() -> None:
    delta = np.zeros((1, 2, 5, 5))
    delta[..., 2, 2] = -4.0  # sign does not matter
    assert spatial_spread(delta)[0] == 0.0
    uniform = np.ones((1, 1, 3, 3))
    assert spatial_spread(uniform)[0] == pytest.approx((9 - 1) / 6)
    assert spatial_spread(np.ones((2, 1, 1, 1))).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"\(N, C, k, k\)"):
        spatial_spread(np.ones((2, 3, 3)))


def test_spread_follows_a_zoom_the_filters_were_built_to_follow() -> None:
    rng = np.random.default_rng(0)
    zooms = np.exp(rng.uniform(np.log(0.6), np.log(1.6), 80))
    spreads = spatial_spread(gaussian_filters(1.2 * zooms))
    exact = spearman_ci(zooms, spreads)
    assert exact.rho == pytest.approx(1.0) and exact.low > 0.99
    unrelated = spearman_ci(zooms, spatial_spread(gaussian_filters(rng.uniform(0.7, 2, 80))))
    assert unrelated.low < 0 < unrelated.high and abs(unrelated.rho) < 0.3
    # a noisy relation: CI brackets the rho and excludes 0
    noisy = spearman_ci(zooms, np.log(zooms) + rng.normal(0, 0.3, 80))
    assert noisy.low < noisy.rho < noisy.high and noisy.low > 0.3


def test_collect_filters_from_a_dmnet_head() -> None:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decode_head = DMHead(
                [8], num_classes=3, in_index=0, channels=4, filter_sizes=(1, 3)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decode_head([x])

    torch.manual_seed(0)
    net = Net()
    batches = [torch.randn(2, 8, 6, 6), torch.randn(3, 8, 6, 6)]
    filters = collect_filters(net, batches)
    assert sorted(filters) == ["dcm_modules.0.filters", "dcm_modules.1.filters"]
    assert filters["dcm_modules.1.filters"].shape == (5, 4, 3, 3)
    assert net.training  # mode restored
    # the first batch's filters equal the generator applied to it directly
    net.eval()
    gen = net.decode_head.dcm_modules[1].generate_filters(batches[0])
    assert np.allclose(filters["dcm_modules.1.filters"][:2], gen.detach().numpy(), atol=1e-6)
    fixed = Net()
    fixed.decode_head = DMHead([8], 3, 0, 4, filter_sizes=(3,), filter_type="regular")
    with pytest.raises(ValueError, match="filter_type='dynamic'"):
        collect_filters(fixed, batches)


def zoom_sample(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(rng.uniform(np.log(0.6), np.log(1.6), n))


def gain_coded_filters(zooms: np.ndarray, seed: int = 1, k: int = 3, channels: int = 16):
    """A fixed filter bank whose per-channel gain (and, for some channels, sign) is a linear
    function of the log zoom, plus a little image noise: W·pool(ctx) + b with the zoom in pool."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (channels, k, k))
    slopes = rng.normal(0, 1.0, channels)
    gain = 1.0 + slopes[None, :] * np.log(zooms)[:, None]  # (N, C); crosses 0 for some channels
    noise = rng.normal(0, 0.05, (len(zooms), channels, k, k))
    return gain[:, :, None, None] * base[None] + noise


def test_decoding_sees_a_gain_coded_zoom_the_spread_cannot() -> None:
    zooms = zoom_sample()
    filters = gain_coded_filters(zooms)
    assert decoding_r2(filters, np.log(zooms)) > 0.9
    assert permuted_decoding_r2(filters, np.log(zooms)) < 0.1
    # the round-1 measure is blind to it (the constructed case: rho near 0)
    assert abs(spearman_ci(zooms, spatial_spread(filters)).rho) < 0.3


def test_decoding_finds_nothing_in_filters_that_ignore_the_zoom() -> None:
    zooms = zoom_sample()
    unrelated = gain_coded_filters(zoom_sample(seed=7))  # the same code of other images' zooms
    assert decoding_r2(unrelated, np.log(zooms)) < 0.1
    rng = np.random.default_rng(2)
    assert decoding_r2(rng.normal(0, 1, (200, 16, 7, 7)), np.log(zooms)) < 0.1


def test_decoding_r2_equals_a_direct_least_squares_cross_validation() -> None:
    """With a negligible penalty and fewer features than images, the ridge decoder is ordinary
    least squares on standardised features, fold by fold (image i in fold i mod 5)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (60, 4)) * [1.0, 5.0, 0.2, 1.0]
    y = x @ [0.5, -0.1, 2.0, 0.0] + rng.normal(0, 0.5, 60)
    predicted = np.empty(60)
    for k in range(5):
        train, test = np.arange(60) % 5 != k, np.arange(60) % 5 == k
        design = np.column_stack([np.ones(train.sum()), x[train]])
        coef = np.linalg.lstsq(design, y[train], rcond=None)[0]
        predicted[test] = coef[0] + x[test] @ coef[1:]
    expected = 1 - ((y - predicted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert decoding_r2(x, y, penalties=[1e-12]) == pytest.approx(expected, abs=1e-8)
    # the penalty chosen by leave-one-out error from the default grid does about as well here
    assert decoding_r2(x, y) == pytest.approx(expected, abs=0.02)


def test_decoding_needs_a_varying_target_and_enough_images() -> None:
    with pytest.raises(ValueError, match="constant"):
        decoding_r2(np.ones((20, 3)) + np.arange(20)[:, None], np.ones(20))
    with pytest.raises(ValueError, match=">= 10 images"):
        decoding_r2(np.ones((6, 3)), np.arange(6.0))


def test_pooled_features_are_the_spatial_mean_of_the_backbone_feature() -> None:
    class Backbone(torch.nn.Module):
        def extract_features(self, images: torch.Tensor) -> list[torch.Tensor]:
            return [images, images * 2]

    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    pooled = collect_pooled_features(Backbone(), [images, images + 1], index=1)
    expected = torch.cat([images * 2, (images + 1) * 2]).mean((-2, -1)).numpy()
    np.testing.assert_allclose(pooled, expected)


def decoded(seed: int, filters: float, null: float, permuted: float = -0.05) -> dict:
    return {
        "seed": seed,
        "filters": filters,
        "null_filters": null,
        "filters_permuted": permuted,
        "pooled_features": 0.9,
        "pooled_features_permuted": -0.02,
        "filters_by_branch": {"k1": filters - 0.1, "k3": filters},
        "null_filters_by_branch": {"k1": null, "k3": null + 0.01 * seed},
    }


def test_decoding_verdict_follows_the_protocol_rule() -> None:
    from scipy import stats

    r2 = [(0.80, 0.60), (0.75, 0.62), (0.85, 0.58), (0.70, 0.61), (0.78, 0.65)]
    verdict = decoding_verdict([decoded(s, f, n) for s, (f, n) in enumerate(r2, start=1)])
    diff = np.subtract(*zip(*r2, strict=True))
    assert verdict["difference"].mean == pytest.approx(diff.mean())
    assert verdict["difference"].p == pytest.approx(stats.ttest_1samp(diff, 0).pvalue)
    assert verdict["encodes"] and verdict["adapts"] and not verdict["overfitting"]
    assert verdict["mean_share"] == pytest.approx(np.mean([f for f, _ in r2]) / 0.9)
    # per branch: a Holm family of the branches
    k1 = np.array([f - 0.1 - n for f, n in r2])
    k3 = np.array([f - (n + 0.01 * s) for s, (f, n) in enumerate(r2, start=1)])
    ps = [stats.ttest_1samp(k1, 0).pvalue, stats.ttest_1samp(k3, 0).pvalue]
    assert verdict["branches"]["k1"].adjusted_p == pytest.approx(holm(ps)[0][0])
    # filters no better than the null: neither adapts nor (mean R² 0.3) encodes
    flat = decoding_verdict([decoded(s, 0.3 + 0.01 * s, 0.29) for s in (1, 2, 3)])
    assert not flat["encodes"]
    overfit = decoding_verdict([decoded(s, 0.8, 0.2, permuted=0.15) for s in (1, 2)])
    assert overfit["overfitting"] and not overfit["adapts"]  # two equal differences: sd 0
    with pytest.raises(ValueError, match="null run"):
        decoding_verdict(
            [{k: v for k, v in decoded(1, 0.8, 0.2).items() if k != "null_filters"}] * 2
        )


@pytest.mark.slow
def test_script_decodes_runs_against_their_null_runs(tmp_path: Path) -> None:
    import json

    from omegaconf import OmegaConf

    from helpers import NARROW, ROOT, TINY, compose_config, tiny_checkpoint

    sys.path.insert(0, str(ROOT / "scripts"))
    import filter_adaptation as script

    runs = []
    for seed in (1, 2):
        overrides = [
            "data=synthetic_scales",
            "data.dataset.eval_length=20",
            f"seed={seed}",
            *NARROW,
        ]
        run = tmp_path / f"run{seed}"
        run.mkdir()
        ckpt = tiny_checkpoint(run / "best.ckpt", overrides)
        OmegaConf.save(compose_config("train", TINY + overrides), run / "config.yaml")
        (run / "metrics.json").write_text(json.dumps({"best_checkpoint": str(ckpt)}))
        runs.append(str(run))
    out = tmp_path / "r2.json"
    # each run its own null (a stand-in for the zoom-fixed run of the same seed)
    argv = [*runs, "--decode", "--null-run", *runs, "--json", str(out)]
    assert script.main(argv) == 0
    report = json.loads(out.read_text())
    first = report["runs"][0]["decoding_r2"]
    assert sorted(first["filters_by_branch"]) == [f"dcm_modules.{i}.filters" for i in range(4)]
    assert first["null_filters"] == first["filters"]  # the same run as its own null
    assert all(-5 < first[k] <= 1 for k in ("filters", "pooled_features", "filters_permuted"))
    assert report["verdict"]["difference"]["mean"] == 0.0 and not report["verdict"]["adapts"]
    assert script.main([str(tmp_path / "missing")]) == 2
    assert script.main([*runs, "--null-run", runs[0]]) == 2  # one null per run
