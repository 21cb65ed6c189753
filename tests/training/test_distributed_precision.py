"""Paths that only matter on GPUs, exercised on CPU where torch allows: DDP (spawn + gloo), bf16."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dynaseg.run.recipes import evaluate, train
from helpers import NO_FIGURES, TINY, compose_config


def test_bf16_mixed_training_step_is_finite(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        [*TINY, *NO_FIGURES, "debug=fdr", "trainer.precision=bf16-mixed"],
        output_dir=tmp_path,
    )
    results = train(cfg)
    assert 0.0 <= results["test"]["mIoU"] <= 1.0


@pytest.mark.slow
def test_ddp_spawn_two_processes_trains_and_validates(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        TINY
        + [
            "trainer=ddp_spawn",
            "data.dataset.eval_length=5",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "trainer.num_sanity_val_steps=0",
            "~logger",
            "callbacks.lr_monitor=null",
            "callbacks.rich_progress_bar=null",
        ],
        output_dir=tmp_path,
    )
    results = train(cfg)
    assert results["global_step"] == 2
    assert not math.isnan(results["val"]["mIoU"]) and 0.0 <= results["val"]["mIoU"] <= 1.0
    best = Path(results["best_checkpoint"])
    assert best.is_file()
    # 5 validation images on 2 processes: the distributed result must equal one process's
    # (a padded DistributedSampler would count one image twice).
    single = evaluate(
        compose_config(
            "eval",
            [
                f"ckpt_path={best}",
                *[a for a in TINY if a.startswith("data.")],
                "data.dataset.eval_length=5",
                "trainer.accelerator=cpu",
                "~logger",
            ],
            output_dir=tmp_path / "eval",
        )
    )
    assert results["test"]["mIoU"] == pytest.approx(single["test"]["mIoU"], abs=1e-6)
    assert results["test"]["aAcc"] == pytest.approx(single["test"]["aAcc"], abs=1e-6)
