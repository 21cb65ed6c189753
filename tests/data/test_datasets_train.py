"""`python src/train.py data=<name> paths.data_dir=<fixture> trainer.fast_dev_run=true` runs for
each real dataset on a tiny fixture in its on-disk format (prepared by the prep scripts).

The recipe runs in-process (``train(cfg)`` is all ``src/train.py`` does after composing); the
entry point itself is run as a subprocess by tests/test_entrypoints.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynaseg.run.recipes import train
from fixtures_real import write_prepared_datasets
from helpers import NO_FIGURES, compose_config

QUIET = [
    "extras.print_config=false",
    "callbacks.rich_progress_bar=null",
    "~logger",
    "callbacks.lr_monitor=null",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_datasets(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("name", ["ade20k", "voc_aug", "pascal_context", "cityscapes"])
def test_fast_dev_run(data_dir: Path, tmp_path: Path, name: str) -> None:
    overrides = [
        "experiment=quickstart",
        f"data={name}",
        f"paths.data_dir={data_dir}",
        "trainer.fast_dev_run=true",
        "data.num_workers=0",
        *QUIET,
        *NO_FIGURES,
        # Small crops keep the CPU forward pass cheap; the configs' real crop/scale are exercised
        # by tests/test_datasets.py::test_data_config_builds_batches.
        "data.crop_size=[64,64]",
        "data.scale=[128,64]",
        "data.test_scale=[128,64]",
    ]
    results = train(compose_config("train", overrides, output_dir=tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["mIoU"] == results["test"]["mIoU"]
    assert 0.0 <= metrics["test"]["mIoU"] <= 1.0  # the fixture's val split went through the metric
