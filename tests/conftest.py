"""pytest configuration: tests never reach the network (see helpers.py); under pytest-xdist
(``make test`` runs one worker per core) each worker computes on one thread, and a trained run
that several tests read is made once for the whole session (``helpers.shared_run_dir``)."""

import os
from pathlib import Path

import pytest

import helpers  # sets the offline environment variables on import


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # two workers on two cores: a second intra-op thread per worker (and per training
        # subprocess it starts) would only oversubscribe the cores
        import torch

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_wandb_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run dir of one tiny DMNet training (4 steps, validation at 2 and 4) with the CSV logger and
    an offline W&B logger: shared by the logging-callback and notebook tests."""
    return helpers.shared_run_dir(tmp_path_factory, "tiny_wandb_run", _train_tiny_wandb_run) / "run"


def _train_tiny_wandb_run(root: Path) -> None:
    run_dir = root / "run"
    proc = helpers.run_python(
        "src/train.py",
        *helpers.TINY,
        "logger=[csv,wandb]",
        "logger.wandb.offline=true",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "extras.print_config=false",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={run_dir.parent}/logs",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
