"""Evaluation over hundreds of images keeps memory flat (no per-batch state accumulates)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate

from dynaseg.run.recipes import build_model
from helpers import TINY, compose_config

PAGE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RecordMemory(L.Callback):
    def __init__(self) -> None:
        self.rss: list[int] = []

    def on_test_batch_end(self, *args, **kwargs) -> None:
        self.rss.append(rss_bytes())


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_evaluating_300_images_keeps_memory_flat(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        [
            *TINY,
            "data.dataset.eval_length=300",
            "data.val_batch_size=6",
            "data.dataset.size=[64,64]",
        ],
    )
    datamodule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    memory = RecordMemory()
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[memory],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    assert len(memory.rss) == 50
    warm = memory.rss[10]  # allocator pools and lazy imports settle in the first batches
    growth = max(memory.rss[10:]) - warm
    assert growth < 16 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 40 batches"
    assert 0.0 <= model.last_results["test"]["mIoU"] <= 1.0
