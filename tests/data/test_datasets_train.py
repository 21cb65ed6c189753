"""`python src/train.py data=<name> paths.data_dir=<fixture> trainer.fast_dev_run=true` runs for
each real dataset on a tiny fixture in its on-disk format (prepared by the prep scripts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_real import (  # noqa: E402
    write_prepared_datasets,
)

REPO = Path(__file__).resolve().parents[2]
_FDR_KEY = "trainer.fast_dev_run"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_datasets(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("name", ["ade20k", "voc_aug", "pascal_context", "cityscapes"])
def test_fast_dev_run(data_dir: Path, tmp_path: Path, name: str) -> None:
    cmd = [
        sys.executable, "src/train.py", "experiment=quickstart", f"data={name}",
        f"paths.data_dir={data_dir}", f"{_FDR_KEY}=true", "data.num_workers=0",
        f"hydra.run.dir={tmp_path / 'run'}",
        # Small crops keep the CPU forward pass cheap; the configs' real crop/scale are exercised
        # by tests/test_datasets.py::test_data_config_builds_batches.
        "data.crop_size=[64,64]", "data.scale=[128,64]", "data.test_scale=[128,64]",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["mIoU"] <= 1.0  # the fixture's val split went through the metric
