"""Tables at an earlier validation (protocol E3 (b)) from the runs' CSV logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dynaseg.analysis.learning_curve import at_step
from dynaseg.tables import build_tables, load_sweep

HEAD = {"filter_type": "regular", "filter_sizes": [1, 3, 5, 7], "dilations": None}
HEADER = "epoch,step,train/loss,val/IoU.bird,val/IoU.balloon,val/mIoU\n"


def write_run(job: Path, seed: int, curve: dict[int, float], final: float) -> None:
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create([f"seed={seed}"]), job / ".hydra/overrides.yaml")
    log = job / "csv/version_0"
    log.mkdir(parents=True)
    # a training row, then one validation row per entry (logged at step - 1); bird absent at 300
    rows = ["0,5,2.3,,,\n"]
    rows += [
        f"0,{step - 1},,{'' if step == 300 else value},{value},{value}\n"
        for step, value in curve.items()
    ]
    (log / "metrics.csv").write_text(HEADER + "".join(rows))
    config = {"seed": seed, "model": {"net": {"decode_head": HEAD}}}
    config["data"] = {"dataset": {"zoom_range": [0.6, 1.6]}}
    per_class = {c: {"IoU": final} for c in ("bird", "balloon", "car", "boat", "sheep", "buoy")}
    payload = {
        "status": "completed",
        "val": {"mIoU": final, "per_class": per_class},
        "provenance": {"seed": seed, "overrides": [f"seed={seed}"], "config": config},
    }
    (job / "metrics.json").write_text(json.dumps(payload))


def test_tables_at_an_earlier_step_read_the_csv_validation(tmp_path: Path) -> None:
    write_run(tmp_path / "sweep/0", 1, {300: 0.40, 600: 0.50}, 0.55)
    write_run(tmp_path / "sweep/1", 2, {300: 0.44, 600: 0.52}, 0.57)
    write_run(tmp_path / "sweep/2", 3, {600: 0.51}, 0.56)  # no validation at 300
    sweep = load_sweep(tmp_path / "sweep")
    early = at_step(sweep, 300)
    assert [j.status for j in early.jobs] == ["completed", "completed", "missing"]
    assert "after step 300" in early.jobs[2].error
    tables = build_tables(early, "dmnet-table1-mini")
    regular = tables[0].cells[tables[0].row_labels.index("Regular {1,3,5,7}")][0]
    assert regular.values == pytest.approx([40.0, 44.0])
    scale = next(t for t in tables if t.group == "scale-decided")
    cell = scale.cells[scale.row_labels.index("Regular {1,3,5,7}")][0]
    assert cell.values == pytest.approx([40.0, 44.0])  # bird absent at 300: balloon alone
    mid = build_tables(at_step(sweep, 600), "dmnet-table1-mini")[0]
    assert mid.cells[1][0].values == pytest.approx([50.0, 52.0, 51.0])
    final = build_tables(sweep, "dmnet-table1-mini")[0]  # the final validation, unchanged
    assert final.cells[1][0].values == pytest.approx([55.0, 57.0, 56.0])
