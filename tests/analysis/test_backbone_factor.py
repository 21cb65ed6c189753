"""Verdicts over backbones (protocol E4): head seeds averaged per backbone, paired by backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from dynaseg.analysis.backbone_factor import by_backbone
from dynaseg.tables import build_tables, load_sweep

REGULAR = {"filter_type": "regular", "filter_sizes": [1, 3, 5, 7], "dilations": None}
DYNAMIC = {**REGULAR, "filter_type": "dynamic", "context_index": 4}
# (head, backbone) -> val mIoU (%) of head seeds 1, 2, 3 (zoom condition only)
VALUES = {
    ("regular", 0): [58.0, 58.4, 57.9],
    ("regular", 1): [59.5, 59.0, 59.9],
    ("regular", 2): [57.0, 57.6, 57.2],
    ("dynamic", 0): [57.0, 57.1, 56.8],
    ("dynamic", 1): [58.9, 58.0, 58.7],
    ("dynamic", 2): [56.1, 56.0, 56.4],
}


def write_sweep(root: Path) -> Path:
    num = 0
    for (head, backbone), values in VALUES.items():
        for seed, value in enumerate(values, start=1):
            job = root / "sweep" / str(num)
            (job / ".hydra").mkdir(parents=True)
            overrides = [f"seed={seed}", f"backbone_seed={backbone}"]
            OmegaConf.save(OmegaConf.create(overrides), job / ".hydra/overrides.yaml")
            config = {
                "seed": seed,
                "model": {"net": {"decode_head": REGULAR if head == "regular" else DYNAMIC}},
                "data": {"dataset": {"zoom_range": [0.6, 1.6]}},
                "experiment": "dmnet_table1_kernel_sets_mini",
            }
            if backbone:  # backbone 0 is the default: older runs' configs do not name it
                config["backbone_seed"] = backbone
            prov = {"overrides": overrides, "seed": seed, "config": config}
            val = {"mIoU": value / 100}
            payload = {"status": "completed", "val": val, "provenance": prov}
            (job / "metrics.json").write_text(json.dumps(payload))
            num += 1
    return root / "sweep"


def test_cells_are_backbone_means_and_orderings_pair_backbones(tmp_path: Path) -> None:
    sweep = by_backbone(load_sweep(write_sweep(tmp_path)))
    assert sweep.seeds == [0, 1, 2]
    (table,) = build_tables(sweep, "dmnet-table1-mini", class_groups={})[:1]
    regular = table.cells[table.row_labels.index("Regular {1,3,5,7}")][0]
    per_backbone = {b: np.mean(VALUES[("regular", b)]) for b in range(3)}
    assert regular.runs.per_seed == pytest.approx({str(b): v for b, v in per_backbone.items()})
    assert regular.n == 3
    ordering = next(
        o
        for o in table.orderings
        if o.label_a == "Dynamic {1,3,5,7} @ zoom 0.6-1.6"
        and o.label_b == "Regular {1,3,5,7} @ zoom 0.6-1.6"
    )
    dyn = [np.mean(VALUES[("dynamic", b)]) for b in range(3)]
    reg = [np.mean(VALUES[("regular", b)]) for b in range(3)]
    assert ordering.diff.n == 3 and ordering.diff.mean == pytest.approx(np.mean(dyn) - np.mean(reg))
    assert ordering.diff.p == pytest.approx(stats.ttest_rel(dyn, reg).pvalue)
