"""dynaseg.visualization: colours, figure contents (the drawn arrays), head-internals views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynaseg import visualization as vis
from dynaseg.visualization import internals as internal_figures

PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
NAMES = ["a", "b", "c"]


def test_confusion_matrix_figure_draws_the_row_normalised_matrix() -> None:
    confmat = torch.tensor([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    fig = vis.plot_confusion_matrix(confmat, NAMES)
    drawn = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    expected = 100 * np.array([[0.8, 0.2, 0], [np.nan] * 3, [0.25, 0.25, 0.5]])
    np.testing.assert_allclose(drawn, expected)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == NAMES
    with pytest.raises(ValueError, match="3 class names"):
        vis.plot_confusion_matrix(torch.zeros(2, 2), NAMES)


def test_per_class_chart_and_predictions_figure() -> None:
    fig = vis.plot_per_class(np.array([0.5, np.nan, 0.25]), NAMES, acc=np.array([0.6, 0.1, 0.3]))
    bars = [p.get_width() for p in fig.axes[0].patches[:3]]
    assert bars == [50.0, 0.0, 25.0]
    assert "mIoU 37.5" in fig.axes[0].get_title()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["50.0", "n/a", "25.0"]

    image = np.zeros((4, 4, 3), np.uint8)
    label = np.array([[0] * 4] * 2 + [[255] * 4] * 2)
    pred = np.array([[1] * 4] * 4)
    fig = vis.plot_predictions([image], [label], [pred], NAMES, PALETTE)
    legend = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert legend == ["a", "b", "ignored"]
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array()[0, 0], [0, 153, 0])
    assert vis.figure_to_array(fig).ndim == 3


def test_dmnet_filter_view_shows_both_images_filters_and_their_difference() -> None:
    rng = np.random.default_rng(0)
    a = {
        f"dcm_modules.{i}.filters": torch.tensor(rng.normal(size=(1, 6, k, k)))
        for i, k in enumerate((1, 3))
    }
    b = {key: value * 0.5 for key, value in a.items()}
    fig = vis.plot_dmnet_filters(a, b, max_channels=4)
    assert fig.get_suptitle().startswith("DMNet generated filters")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6  # 2 branches × (A, B, A − B)
    diff_3x3 = np.ma.filled(panels[5].images[0].get_array(), np.nan)
    expected = internal_figures._mosaic(
        (a["dcm_modules.1.filters"][0] * 0.5).numpy()[:4], columns=2
    )
    np.testing.assert_allclose(diff_3x3, expected, rtol=1e-6)
    assert "‖A−B‖/‖A‖ = 0.50" in panels[3].get_ylabel()
    with pytest.raises(ValueError, match="filters"):
        vis.plot_dmnet_filters({}, {})


def test_head_internals_dispatch_for_cac_sac_dsnet() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    cac = {
        "cac_modules.0.weights": torch.rand(1, 4, 8, 8) * 3,
        "cac_modules.0.kernel": torch.randn(1, 4, 3, 3),
    }
    sac = {"scale": torch.rand(1, 1, 8, 8) + 0.5}
    offsets = torch.zeros(1, 18, 8, 8)
    offsets[:, 0::2] = 2.0  # every tap moves 2 feature pixels down
    ds = {"offsets": offsets}
    titles = {}
    for name, internals in {"cac": cac, "sac": sac, "ds": ds}.items():
        fig = vis.plot_head_internals([internals], [image])
        titles[name] = fig.get_suptitle()
    assert titles["cac"].startswith("CaC-Net") and titles["sac"].startswith("SAC")
    assert titles["ds"].startswith("DSNet")
    fig = vis.plot_ds_offsets(ds, image)
    magnitude = fig.axes[1].images[0].get_array()
    np.testing.assert_allclose(magnitude, 2.0)
    assert vis.plot_head_internals([{}]) is None  # FCN & co. record nothing


def test_run_metrics_are_named_by_their_run_dirs(tmp_path: Path) -> None:
    for job, miou in (("0", 0.5), ("1", 0.6)):
        (tmp_path / "sweep" / job).mkdir(parents=True)
        payload = {"val": {"mIoU": miou, "per_class": {"a": {"IoU": miou, "Acc": 1.0}}}}
        (tmp_path / "sweep" / job / "metrics.json").write_text(json.dumps(payload))
    runs = vis.load_run_metrics(
        [tmp_path / "sweep" / "0", tmp_path / "sweep" / "1" / "metrics.json"]
    )
    assert list(runs) == ["0", "1"] and runs["1"]["val"]["mIoU"] == 0.6
    fig = vis.plot_run_comparison(runs)
    assert [p.get_height() for p in fig.axes[0].patches] == [50.0, 60.0]
    assert vis.evenly_spaced(3, 10) == [0, 4, 9] and vis.evenly_spaced(5, 2) == [0, 1]
