"""pytest configuration: tests never reach the network (see helpers.py); under pytest-xdist
(``make test`` runs one worker per core) each worker computes on one thread."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import helpers  # sets the offline environment variables on import

# Trained runs that several tests read: under xdist their tests go to one worker (one run, not
# one per worker). ``make test`` passes ``--dist loadgroup``.
SHARED_RUN_FIXTURES = ("tiny_wandb_run", "uninterrupted")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # two workers on two cores: a second intra-op thread per worker (and per training
        # subprocess it starts) would only oversubscribe the cores
        import torch

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for name in SHARED_RUN_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


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
