"""Held-out choice of a setting per arm (protocol E3 (c)) on a fabricated lr-grid sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dynaseg.analysis.heldout_selection import select_on_heldout, selection_argument
from dynaseg.cli import select_heldout
from dynaseg.errors import UserError
from dynaseg.reporting.sweeps import load_sweep

# (filter type, lr) -> held-out (test) mIoU per seed 1, 2; val is 10 points lower everywhere but
# for the regular head at lr 0.1, whose val is the best: the choice must not look at val
TEST = {
    ("regular", 0.025): [0.60, 0.62],
    ("regular", 0.05): [0.66, 0.64],  # chosen: mean 0.65
    ("regular", 0.1): [0.63, 0.63],
    ("dynamic", 0.025): [0.61, 0.60],  # tie with 0.05 on seed 1: the smaller lr
    ("dynamic", 0.05): [0.61, 0.70],
    ("dynamic", 0.1): [0.50, None],  # seed 2 failed: seeds all candidates ran = {1}
}


def write_sweep(root: Path, name: str = "sweep", lrs: set[float] | None = None) -> Path:
    num = 0
    for (filter_type, lr), values in TEST.items():
        if lrs is not None and lr not in lrs:
            continue
        for seed, test in enumerate(values, start=1):
            job = root / name / str(num)
            (job / ".hydra").mkdir(parents=True)
            overrides = [f"seed={seed}", f"model.optimizer.lr={lr}"]
            OmegaConf.save(OmegaConf.create(overrides), job / ".hydra/overrides.yaml")
            config = {
                "seed": seed,
                "model": {
                    "optimizer": {"lr": lr},
                    "net": {"decode_head": {"filter_type": filter_type}},
                },
                "data": {"dataset": {"zoom_range": [0.6, 1.6]}},
            }
            prov = {"overrides": overrides, "seed": seed, "config": config}
            if test is None:
                payload = {"status": "failed", "error": "boom", "provenance": prov}
            else:
                val = 0.9 if (filter_type, lr) == ("regular", 0.1) else test - 0.1
                payload = {
                    "status": "completed",
                    "val": {"mIoU": val},
                    "test": {"mIoU": test},
                    "provenance": prov,
                }
            (job / "metrics.json").write_text(json.dumps(payload))
            num += 1
    return root / name


def test_each_arm_gets_the_best_held_out_candidate(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path)
    choices = select_on_heldout(
        load_sweep(sweep),
        "model.optimizer.lr",
        ["data.dataset.zoom_range", "model.net.decode_head.filter_type"],
    )
    by_head = {c.group[1]: c for c in choices}
    assert by_head["regular"].chosen == 0.05 and by_head["regular"].jobs == ("2", "3")
    assert by_head["regular"].scores[0.05] == pytest.approx(0.65)
    assert by_head["dynamic"].seeds == (1,)  # lr 0.1 failed for seed 2
    assert by_head["dynamic"].scores == pytest.approx({0.025: 0.61, 0.05: 0.61, 0.1: 0.50})
    assert by_head["dynamic"].chosen == 0.025 and by_head["dynamic"].jobs == ("6", "7")
    assert selection_argument(str(sweep), choices) == f"{sweep}:2,3,6,7"


def test_command_prints_choices_and_the_make_table_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep(tmp_path)
    by = ["--by", "model.net.decode_head.filter_type"]
    assert select_heldout.main([str(sweep), *by]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "dynamic: model.optimizer.lr=0.025 (0.025: 61.00, 0.05: 61.00, 0.1: 50.00; seeds 1)"
    )
    assert out[-1] == f"{sweep}:2,3,6,7"
    with pytest.raises(UserError, match="nope.mIoU"):
        select_heldout.main([str(sweep), "--metric", "nope.mIoU"])


def test_a_grid_run_as_two_sweeps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """lr 0.05 in one sweep (the protocol's base runs), 0.025 and 0.1 in another: the same
    choices, and a make_table argument per sweep."""
    base = write_sweep(tmp_path, "base", {0.05})  # jobs 0-1 regular, 2-3 dynamic
    grid = write_sweep(tmp_path, "grid", {0.025, 0.1})  # regular 0-3, dynamic 0.025: 4-5
    joined = f"{base}+{grid}"
    assert select_heldout.main([joined, "--by", "model.net.decode_head.filter_type"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dynamic: model.optimizer.lr=0.025 (0.025: 61.00, 0.05: 61.00")
    assert out[1].startswith("regular: model.optimizer.lr=0.05 (")
    assert out[-1] == f"{base}:0,1+{grid}:4,5"
