"""The positive control's table (paper_tables.yaml ``scale-control-mini``) from a fabricated sweep
of experiment=scale_control_mini: every arm lands in its row, the orderings are the protocol's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from dynaseg.tables import build_tables, load_sweep

ORACLE = "dynaseg.models.heads.zoom_oracle.ZoomFiLMHead"
SAC = "dynaseg.models.heads.sac.SACHead"
ZOOM, FIXED = [0.6, 1.6], [1.0, 1.0]
# (head, adaptive, zoom range) -> val mIoU (%) for seeds 1-3; at zoom 1 the oracle is its twin
VALUES = {
    (ORACLE, True, "zoom"): [60.0, 61.0, 60.5],
    (ORACLE, False, "zoom"): [57.0, 57.0, 57.0],  # oracle - twin: +3, +4, +3.5
    (ORACLE, True, "fixed"): [66.0, 66.5, 65.8],
    (ORACLE, False, "fixed"): [66.0, 66.5, 65.8],
    (SAC, True, "zoom"): [58.0, 58.5, 59.5],
    (SAC, False, "zoom"): [57.0, 58.0, 58.0],  # SAC - plain: +1, +0.5, +1.5
    (SAC, True, "fixed"): [66.2, 65.9, 66.3],
    (SAC, False, "fixed"): [66.0, 66.0, 66.0],  # +0.2, -0.1, +0.3
}


def write_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    for num, ((target, adaptive, cond), values) in enumerate(VALUES.items()):
        for seed, value in enumerate(values, start=1):
            job = sweep / f"{num}{seed}"
            (job / ".hydra").mkdir(parents=True)
            head = {"_target_": target, "adaptive": adaptive}
            if target == SAC:
                head["layout"] = "fcn_last_conv"
            overrides = [f"seed={seed}", "experiment=scale_control_mini"]
            OmegaConf.save(OmegaConf.create(overrides), job / ".hydra/overrides.yaml")
            config = {
                "model": {"net": {"decode_head": head}},
                "data": {"dataset": {"zoom_range": ZOOM if cond == "zoom" else FIXED}},
            }
            # bird = balloon = the mIoU - 20 (scale-decided group = mIoU - 20); context: 0.5
            per_class = {c: {"IoU": value / 100 - 0.2, "Acc": 0.5} for c in ("bird", "balloon")}
            per_class |= {c: {"IoU": 0.5, "Acc": 0.5} for c in ("car", "boat", "sheep", "buoy")}
            provenance = {
                "overrides": overrides,
                "seed": seed,
                "config": config,
                "wall_time_s": 60.0,
                "cpu_time_s": 60.0,
                "steps": 300,
                "git": {"commit": "0123456789abcdef", "dirty": False},
                "hardware": {"cpus": 2, "processor": "x86_64", "torch_threads": 1},
            }
            val = {"mIoU": value / 100, "per_class": per_class}
            payload = {"val": val, "status": "completed", "provenance": provenance}
            (job / "metrics.json").write_text(json.dumps(payload))
    return sweep


def test_scale_control_table_rows_and_protocol_orderings(tmp_path: Path) -> None:
    tables = build_tables(load_sweep(write_sweep(tmp_path)), "scale-control-mini")
    primary = tables[0]
    assert [t.group for t in tables] == [None, "context-decided", "scale-decided"]
    assert primary.row_labels == [
        "Zoom oracle (FiLM)",
        "Zoom-blind twin",
        "SAC (two-conv)",
        "Plain twin",
    ]
    means = [[cell.mean for cell in line] for line in primary.cells]
    expected = [
        [np.mean(VALUES[(t, a, "zoom")]), np.mean(VALUES[(t, a, "fixed")])]
        for t, a in [(ORACLE, True), (ORACLE, False), (SAC, True), (SAC, False)]
    ]
    np.testing.assert_allclose(means, expected)
    assert not primary.unmatched

    by_label = {(o.label_a, o.label_b): o.diff for o in primary.orderings}
    assert len(by_label) == 6
    oracle_zoom = np.subtract(VALUES[(ORACLE, True, "zoom")], VALUES[(ORACLE, False, "zoom")])
    interaction = by_label[
        (
            "(Zoom oracle (FiLM) @ zoom 0.6-1.6 − Zoom-blind twin @ zoom 0.6-1.6)",
            "(Zoom oracle (FiLM) @ zoom 1 (control) − Zoom-blind twin @ zoom 1 (control))",
        )
    ]
    # at zoom 1 the two are the same run: the interaction is the oracle's gain with the zoom
    assert interaction.mean == pytest.approx(oracle_zoom.mean())
    assert interaction.p == pytest.approx(stats.ttest_1samp(oracle_zoom, 0).pvalue)
    fixed = by_label[
        ("Zoom oracle (FiLM) @ zoom 1 (control)", "Zoom-blind twin @ zoom 1 (control)")
    ]
    assert fixed.differences == [0.0, 0.0, 0.0] and fixed.p is None and not fixed.resolved

    # the scale-decided group table reads bird and balloon (both value - 20 here)
    scale = tables[2]
    assert scale.cells[0][0].mean == pytest.approx(np.mean(VALUES[(ORACLE, True, "zoom")]) - 20)
