"""Recipe manifest: the run is compared with its preset's published recipe at start."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from dynaseg.errors import ConfigError
from dynaseg.run.manifest import RecipeMismatchWarning, actual_run, check_recipe
from dynaseg.run.recipes import train
from helpers import NO_FIGURES, TINY, compose_config

ADE20K_80K = {
    "paper": "mmseg DMNet R-50-D8 ADE20K 80k",
    "global_batch": 16,
    "gpus": 4,
    "nodes": 1,
    "max_steps": 80000,
    "lr": 0.01,
}


def run_of(processes: int, batch: int, lr: float = 0.01, steps: int = 80000) -> dict:
    cfg = {
        "data": {"batch_size": batch},
        "model": {"optimizer": {"lr": lr}},
        "trainer": {"max_steps": steps, "num_nodes": 1},
    }
    return actual_run(cfg, world_size=processes)


def test_matching_run_is_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        report = check_recipe(ADE20K_80K, run_of(processes=4, batch=4))
        # same global batch on other hardware (2 GPUs × 8) is the same recipe
        check_recipe(ADE20K_80K, run_of(processes=2, batch=8))
    assert report["mismatches"] == [] and report["actual"]["global_batch"] == 16


def test_single_gpu_run_warns_with_both_fixes() -> None:
    with pytest.warns(RecipeMismatchWarning) as caught:
        report = check_recipe(ADE20K_80K, run_of(processes=1, batch=4))
    text = str(caught[0].message)
    assert "global batch 4 (1 process(es) × 4 per process)" in text
    assert "the recipe uses 16 (4 GPUs × 4)" in text
    assert "data.batch_size=16" in text and "model.optimizer.lr=0.0025" in text
    assert report["linear_scaled_lr"] == pytest.approx(0.0025)
    assert report["intended"]["global_batch"] == 16 and report["actual"]["global_batch"] == 4


def test_linearly_scaled_lr_is_accepted_but_steps_are_checked() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check_recipe(ADE20K_80K, run_of(processes=1, batch=4, lr=0.0025))
    assert report["mismatches"] == []
    with pytest.warns(RecipeMismatchWarning, match="40000 steps but the recipe trains 80000"):
        check_recipe(ADE20K_80K, run_of(processes=4, batch=4, steps=40000))
    with pytest.warns(RecipeMismatchWarning, match="LR 0.02 but the recipe uses 0.01"):
        check_recipe(ADE20K_80K, run_of(processes=4, batch=4, lr=0.02))


def test_epoch_based_schedule_compares_epochs_not_steps() -> None:
    sac = {**ADE20K_80K, "global_batch": 8, "max_steps": 26040, "max_epochs": 70}
    epoch_run = {**run_of(processes=4, batch=2, steps=-1), "max_epochs": 70}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_recipe(sac, epoch_run)["mismatches"] == []
    with pytest.warns(RecipeMismatchWarning, match="35 epochs but the recipe trains 70"):
        check_recipe(sac, {**epoch_run, "max_epochs": 35})


def test_bad_manifest_names_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"missing \['lr'\]"):
        check_recipe({k: v for k, v in ADE20K_80K.items() if k != "lr"}, run_of(4, 4))
    with pytest.raises(ConfigError, match="not divisible"):
        check_recipe({**ADE20K_80K, "global_batch": 10}, run_of(4, 4))


def test_train_records_the_manifest_in_metrics_json(tmp_path: Path) -> None:
    manifest = (
        "manifest={paper: tiny, global_batch: 8, gpus: 4, max_steps: 600, lr: 0.002,"
        "published: {mIoU: 50.0, eval: ms+flip}}"
    )
    cfg = compose_config("train", [*TINY, *NO_FIGURES, "debug=fdr", manifest], output_dir=tmp_path)
    with pytest.warns(RecipeMismatchWarning, match="global batch 2"):
        train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["manifest"]["intended"]["published"] == {"mIoU": 50.0, "eval": "ms+flip"}
    assert metrics["manifest"]["actual"]["global_batch"] == 2
    assert metrics["manifest"]["actual"]["max_steps"] == 600
    assert len(metrics["manifest"]["mismatches"]) == 1
