"""Filter-adaptation measures on constructed filters with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynaseg.analysis.filter_adaptation import (
    collect_filters,
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
