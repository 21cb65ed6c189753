"""Held-out choice of a setting per arm (protocol E3 (c)) on a fabricated lr-grid sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dynaseg.analysis.heldout_selection import select_on_heldout, selection_argument
from dynaseg.tables import load_sweep
from helpers import ROOT

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


def write_sweep(root: Path) -> Path:
    num = 0
    for (filter_type, lr), values in TEST.items():
        for seed, test in enumerate(values, start=1):
            job = root / "sweep" / str(num)
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
    return root / "sweep"


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


def test_script_prints_choices_and_the_make_table_argument(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    sys.path.insert(0, str(ROOT / "scripts"))
    import select_heldout

    sweep = write_sweep(tmp_path)
    by = ["--by", "model.net.decode_head.filter_type"]
    assert select_heldout.main([str(sweep), *by]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "dynamic: model.optimizer.lr=0.025 (0.025: 61.00, 0.05: 61.00, 0.1: 50.00; seeds 1)"
    )
    assert out[-1] == f"{sweep}:2,3,6,7"
    assert select_heldout.main([str(sweep), "--metric", "nope.mIoU"]) == 2
