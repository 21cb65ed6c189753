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
    permuted_decoding_r2,
    spatial_spread,
    spearman_ci,
    unexplained_energy,
)
from dynaseg.models.heads.dmnet import DMHead


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


@pytest.mark.slow
def test_script_decodes_a_runs_zoom_against_its_null_run(tmp_path: Path) -> None:
    import json

    from omegaconf import OmegaConf

    from helpers import NARROW, ROOT, TINY, compose_config, tiny_checkpoint

    sys.path.insert(0, str(ROOT / "scripts"))
    import filter_adaptation as script

    overrides = ["data=synthetic_scales", "data.dataset.eval_length=20", *NARROW]
    run = tmp_path / "run"
    run.mkdir()
    ckpt = tiny_checkpoint(run / "best.ckpt", overrides)
    OmegaConf.save(compose_config("train", TINY + overrides), run / "config.yaml")
    (run / "metrics.json").write_text(json.dumps({"best_checkpoint": str(ckpt)}))
    out = tmp_path / "r2.json"
    argv = [str(run), "--decode", "--null-run", str(run), "--json", str(out)]
    assert script.main(argv) == 0
    r2 = json.loads(out.read_text())["decoding_r2"]
    assert sorted(r2["filters_by_branch"]) == [f"dcm_modules.{i}.filters" for i in range(4)]
    assert r2["null_filters"] == r2["filters"]  # the same run as its own null
    assert all(-5 < r2[k] <= 1 for k in ("filters", "pooled_features", "filters_permuted"))
    assert script.main([str(tmp_path / "missing")]) == 2
