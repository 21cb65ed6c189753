"""Issue 28's pure-speed changes leave results bit for bit unchanged.

A seeded miniature job (frozen backbone, ``+scale=mini`` via a ``*_mini`` preset) and a short
quick-start run are trained twice in this process, with every pure-speed change switched off and
on, and must give the same metrics (exact floats) and the same final weights:

- scenes kept once generated (``data.dataset.memory_cache_mb``, ``data.dataset.cache_dir``;
  the "on" miniature run reads a disk cache filled beforehand, as a sweep's later jobs do);
- max-pooling in ``channels_last`` when no gradient is needed
  (:class:`~dynaseg.models.layers.ChannelsLastMaxPool2d`; "off" runs ``nn.MaxPool2d``'s kernel);
- DMNet's ``k×k`` context pooled by the compiled kernel
  (:func:`dynaseg.models.ops.native.adaptive_avg_pool2d`; "off" runs ``F.adaptive_avg_pool2d``);
- freed CPU memory kept for reuse (``extras.cpu_memory_reuse``, :mod:`dynaseg.run.cpu_memory`;
  "off" runs with glibc's default mmap and trim limits);
- the frozen backbone's features kept on disk (``callbacks.frozen_feature_cache``,
  :mod:`dynaseg.models.feature_cache`): the miniature job runs once to fill the cache and once
  more reading every batch's features from it, as the later arms of a sweep do.

The miniature preset's third change, no figures, runs after its only validation, at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from dynaseg.models.feature_cache import FeatureCache
from dynaseg.models.layers import ChannelsLastMaxPool2d
from dynaseg.models.ops import native
from dynaseg.run import cpu_memory
from dynaseg.run.recipes import train
from helpers import TINY, compose_config, tiny_checkpoint

TINY_DATA = [o for o in TINY if not o.startswith("experiment=")]
QUIET = ["~logger", "callbacks.lr_monitor=null", "callbacks.rich_progress_bar=null"]
CACHE_OFF = [
    "data.dataset.memory_cache_mb=0",
    "data.dataset.cache_dir=null",
    "callbacks.frozen_feature_cache=null",
]
MINI = [
    "experiment=dmnet_table1_kernel_sets_mini",
    "seed=1",
    "data=synthetic_scales",
    "model.net.decode_head.filter_type=dynamic",
    "model.net.decode_head.filter_sizes=[1,3,5,7]",
    *TINY_DATA,
    "data.dataset.length=6",  # 5 steps x 2 images: scenes are read again within the run
    "trainer.max_steps=5",
    "trainer.val_check_interval=5",
    *QUIET,
]
QUICKSTART = [*TINY, "data.dataset.length=6", "trainer.max_steps=4", "trainer.val_check_interval=2"]
QUICKSTART += ["seed=3", "callbacks.segmentation_logging.num_images=0", *QUIET]


def run(overrides: list[str], out: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Train; return the val/test metrics and the final weights."""
    with monkeypatch.context() as patch:
        pooled: list[tuple[int, int]] = []
        if fast:
            pool = native.adaptive_avg_pool2d

            def counted(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
                pooled.append((out_h, out_w))
                return pool(x, out_h, out_w)

            patch.setattr(native, "adaptive_avg_pool2d", counted)
        else:
            patch.setattr(ChannelsLastMaxPool2d, "forward", nn.MaxPool2d.forward)
            patch.setattr(native, "can_pool", lambda x: False)
            overrides = [*overrides, "extras.cpu_memory_reuse=false"]
            cpu_memory.restore_glibc_defaults()  # an earlier run in this process switched it on
        cfg = compose_config("train", overrides, output_dir=out)
        assert cfg.extras.cpu_memory_reuse is fast
        results = train(cfg)
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {"val": results["val"], "test": results.get("test"), "state": state, "pooled": pooled}


def assert_identical(off: dict, on: dict) -> None:
    assert on["val"] == off["val"] and on["test"] == off["test"]
    assert on["state"].keys() == off["state"].keys()
    assert all(torch.equal(on["state"][k], off["state"][k]) for k in off["state"])


def test_miniature_job_is_unchanged_by_the_pure_speed_changes(tmp_path, monkeypatch) -> None:
    backbone = tiny_checkpoint(tmp_path / "backbone.ckpt")
    job = [*MINI, f"model.init_from.path={backbone}", f"paths.data_dir={tmp_path / 'data'}"]
    job += ["callbacks.fault_tolerance.every_n_steps=5"]  # last.ckpt: the final weights
    cfg = compose_config("train", job, output_dir=tmp_path / "compose")
    assert cfg.data.dataset.cache_dir == str(tmp_path / "data" / "scene_cache")
    for split in ("train", "val"):  # an earlier job of the sweep made the scenes
        dataset = instantiate(cfg.data.dataset)(split=split)
        for i in range(len(dataset)):
            dataset.load(i)
    assert len(list((tmp_path / "data" / "scene_cache").glob("*/train/*.npy"))) == 6

    off = run([*job, *CACHE_OFF], tmp_path / "off", fast=False, monkeypatch=monkeypatch)
    reads: list[bool] = []  # per batch: were the backbone's features read from the cache?
    read = FeatureCache._read

    def counted(self: FeatureCache, *args: object) -> object:
        stored = read(self, *args)
        reads.append(stored is not None)
        return stored

    monkeypatch.setattr(FeatureCache, "_read", counted)
    cold = run(job, tmp_path / "cold", fast=True, monkeypatch=monkeypatch)
    batches = len(reads)  # 5 training batches (random crops: all new), then the validation's
    assert batches > 5 and not any(reads)
    reads.clear()
    warm = run(job, tmp_path / "warm", fast=True, monkeypatch=monkeypatch)
    assert reads == [True] * batches  # the same batches again: every backbone forward skipped
    assert len(list((tmp_path / "data" / "feature_cache").glob("*/*.pt"))) == batches
    assert_identical(off, cold)
    assert_identical(off, warm)
    assert 0.0 <= warm["val"]["mIoU"] <= 1.0 and warm["test"] is None  # test=false in the mini
    if native.native_kernel() is not None:  # the kernel pooled the 3×3, 5×5 and 7×7 contexts
        assert {(3, 3), (5, 5), (7, 7)} <= set(warm["pooled"]) and off["pooled"] == []


@pytest.mark.slow  # fast: the miniature job above; the two changes' own tests (test_scene_cache.py,
# test_layers.py) cover the quick start's dataset class and the pooling with a gradient
def test_quick_start_is_unchanged_by_the_pure_speed_changes(tmp_path, monkeypatch) -> None:
    job = [*QUICKSTART, "callbacks.fault_tolerance.every_n_steps=4"]
    off = run([*job, *CACHE_OFF], tmp_path / "off", fast=False, monkeypatch=monkeypatch)
    on = run(job, tmp_path / "on", fast=True, monkeypatch=monkeypatch)
    assert_identical(off, on)
    assert on["test"] is not None  # the quick start tests its last weights
