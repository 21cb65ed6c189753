"""LR schedules in optimizer steps: poly (mmseg) and step (SAC, ICCV 2017 §4.1)."""

from __future__ import annotations

import lightning as L
import pytest
from hydra.utils import instantiate

from dynaseg.errors import ConfigError
from dynaseg.run.recipes import build_model
from dynaseg.training.schedules import epochs_to_steps, step_lr_lambda
from helpers import TINY, compose_config


class LRRecorder(L.Callback):
    """The LR of the first parameter group used by each optimizer step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit_recording_lr(overrides: list[str], max_steps: int) -> list[float]:
    cfg = compose_config("train", TINY + overrides)
    module = build_model(cfg)
    recorder = LRRecorder()
    trainer = L.Trainer(
        max_steps=max_steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(module, datamodule=instantiate(cfg.data))
    return recorder.lrs


def test_step_lambda_divides_at_each_milestone() -> None:
    f = step_lr_lambda([60, 70], gamma=0.1)
    assert [f(t) for t in (0, 59, 60, 69)] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    assert f(70) == pytest.approx(0.01) and f(10_000) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="milestones"):
        step_lr_lambda([0])


def test_epochs_to_steps_rounds_the_papers_epochs() -> None:
    # SAC on Cityscapes, 4 GPUs × 2: 372 steps per epoch, the LR drops after 60 epochs
    assert epochs_to_steps(60, 372) == 22_320
    assert epochs_to_steps(0.5, 3) == 2
    with pytest.raises(ValueError):
        epochs_to_steps(1, 0)


def test_step_schedule_lr_at_chosen_steps() -> None:
    lrs = fit_recording_lr(
        [
            "model/recipe=sgd_step",
            "~model.scheduler.milestone_epochs",
            "+model.scheduler.milestones=[3]",
            "model.optimizer.lr=0.05",
        ],
        max_steps=5,
    )
    assert lrs == pytest.approx([0.05, 0.05, 0.05, 0.005, 0.005])


def test_step_schedule_milestone_in_epochs_uses_the_loader_length() -> None:
    # TINY: 8 synthetic images, batch 2 (last partial batch dropped) → 4 steps per epoch
    lrs = fit_recording_lr(
        [
            "model/recipe=sgd_step",
            "model.scheduler.milestone_epochs=[1.5]",
            "model.optimizer.lr=0.05",
        ],
        max_steps=8,
    )
    assert lrs == pytest.approx([0.05] * 6 + [0.005] * 2)


def test_step_schedule_needs_exactly_one_milestone_kind() -> None:
    with pytest.raises(ConfigError, match="exactly one of milestones"):
        fit_recording_lr(["model/recipe=sgd_step", "+model.scheduler.milestones=[3]"], max_steps=1)
