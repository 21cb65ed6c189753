"""pytest configuration: tests never reach the network (see helpers.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

import helpers  # sets the offline environment variables on import


@pytest.fixture(scope="session")
def tiny_wandb_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run dir of one tiny DMNet training (4 steps, validation at 2 and 4) with the CSV logger and
    an offline W&B logger: shared by the logging-callback and notebook tests."""
    run_dir = tmp_path_factory.mktemp("tiny_wandb_run") / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "src/train.py",
            *helpers.TINY,
            "logger=[csv,wandb]",
            "logger.wandb.offline=true",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "extras.print_config=false",
            f"hydra.run.dir={run_dir}",
            f"paths.log_dir={run_dir.parent}/logs",
        ],
        cwd=helpers.ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir
