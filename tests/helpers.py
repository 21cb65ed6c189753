"""Shared test helpers: compose the real Hydra configs, keep everything offline."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch import Callback
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# Nothing may reach the network during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("DYNASEG_ROOT", str(ROOT))

# Tiny overrides that make any model/data combination cheap enough for a CPU unit test.
TINY = [
    "experiment=quickstart",
    "data.dataset.length=8",
    "data.dataset.eval_length=4",
    "data.batch_size=2",
    "data.val_batch_size=2",
    "data.num_workers=0",
    "data.crop_size=[64,64]",
    "data.dataset.size=[80,80]",
    "data.scale=[80,80]",
]


def compose_config(
    config_name: str = "train", overrides: list[str] | None = None, output_dir: Path | None = None
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` exactly as the entry points do."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [])
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


class SignalAtStep(Callback):
    """Test-only callback (``+callbacks.sig._target_=helpers.SignalAtStep``): sends the training
    process a real signal (default SIGTERM) at the start of optimizer step ``step`` (0-based), so
    the signal arrives in the middle of that step."""

    def __init__(self, step: int, signum: int = int(signal.SIGTERM)) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
