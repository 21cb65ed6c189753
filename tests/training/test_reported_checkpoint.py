"""Which checkpoint a run reports (issue 19 item 4), the last and best checkpoints' validation
scores in metrics.json (issue 31), and the Flip/MS test variants of one model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dynaseg.errors import ConfigError
from dynaseg.run.recipes import train
from helpers import TINY, compose_config

# two validations (steps 1 and 2) on the synthetic val split, which is also its test split
RUN = TINY + [
    "trainer.max_steps=2",
    "trainer.val_check_interval=1",
    "seed=1",
    "~logger",
    "callbacks.lr_monitor=null",
]


def best_score(path: str) -> float:
    return float(re.search(r"mIoU(\d\.\d{4})", Path(path).name).group(1))


def test_last_checkpoint_is_the_default_and_variants_test_the_same_weights(
    tmp_path: Path,
) -> None:
    cfg = compose_config("train", RUN + ["test_variants={flip: {flip: true}}"], output_dir=tmp_path)
    results = train(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    reported = written["reported_checkpoint"]
    best = reported.pop("best")
    assert reported == {
        "test": "last",
        "path": None,
        "val": "last validation of the fit",
        "last": {"step": 2, "mIoU": pytest.approx(results["val"]["mIoU"])},
    }
    # the best checkpoint's validation: the one ModelCheckpoint kept (its name holds both)
    assert best["path"] == results["best_checkpoint"]
    name = re.fullmatch(r"step(\d{6})-mIoU(\d\.\d{4})\.ckpt", Path(best["path"]).name)
    assert best["step"] == int(name.group(1)) in (1, 2)
    assert best["mIoU"] == pytest.approx(float(name.group(2)), abs=1e-4)
    assert best["mIoU"] >= results["val"]["mIoU"] - 1e-6  # best_model_score is float32
    # the final weights were tested: the same numbers as the last validation (same split)
    assert results["test"]["mIoU"] == pytest.approx(results["val"]["mIoU"], abs=1e-6)
    flip = written["test_variants"]["flip"]
    assert flip["inference"]["flip"] is True and 0.0 <= flip["mIoU"] <= 1.0
    assert written["test"]["mIoU"] == pytest.approx(results["test"]["mIoU"])


@pytest.mark.slow
def test_best_on_val_is_an_option(tmp_path: Path) -> None:
    cfg = compose_config("train", RUN + ["test_checkpoint=best"], output_dir=tmp_path)
    results = train(cfg)
    assert results["reported_checkpoint"]["test"] == "best"
    assert results["reported_checkpoint"]["path"] == results["best_checkpoint"]
    assert results["reported_checkpoint"]["best"]["path"] == results["best_checkpoint"]
    assert results["reported_checkpoint"]["last"]["step"] == 2
    assert results["test"]["mIoU"] == pytest.approx(
        best_score(results["best_checkpoint"]), abs=1e-4
    )


def test_unknown_choice_is_a_config_error_before_fitting(tmp_path: Path) -> None:
    cfg = compose_config("train", RUN + ["test_checkpoint=first"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="test_checkpoint='first'"):
        train(cfg)
