"""`model=<each>` trains for one fast_dev_run step on the synthetic data (issue 4 acceptance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynaseg.run.recipes import train
from helpers import CONF_DIR, NO_FIGURES, TINY, compose_config

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DMNET_SWITCHES = [
    ["model.net.decode_head.filter_type=regular"],
    ["model.net.decode_head.filter_type=depthwise", "model.net.decode_head.filter_sizes=[1,4]"],
    ["model.net.decode_head.filter_type=regular", "model.net.decode_head.dilations=[1,2]"],
    ["model.net.decode_head.context_index=2"],
]


def fast_dev_run(tmp_path: Path, overrides: list[str]) -> dict:
    cfg = compose_config(
        "train", [*TINY, *NO_FIGURES, "debug=fdr", *overrides], output_dir=tmp_path
    )
    return train(cfg)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_one_step(model: str, tmp_path: Path) -> None:
    results = fast_dev_run(tmp_path, [f"model={model}"])
    assert 0.0 <= results["test"]["mIoU"] <= 1.0
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize("switch", DMNET_SWITCHES, ids=lambda s: s[-1].split(".")[-1])
def test_dmnet_ablation_switches_train(switch: list[str], tmp_path: Path) -> None:
    results = fast_dev_run(tmp_path, ["model=dmnet", *switch])
    assert 0.0 <= results["test"]["mIoU"] <= 1.0
