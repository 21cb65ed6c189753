"""Shared test helpers: compose the real Hydra configs, keep everything offline."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from filelock import FileLock
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
# Recipe runs whose test does not look at figures skip drawing them (matplotlib is about half of
# a tiny run); the figures are tested on tiny_wandb_run (conftest.py) and in test_visualization.py.
NO_FIGURES = [
    "callbacks.segmentation_logging.num_images=0",
    "callbacks.segmentation_logging.confusion_matrix=false",
]


def run_python(
    *args: str,
    cwd: Path = ROOT,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    **kwargs: object,
) -> subprocess.CompletedProcess[str]:
    """``python <args>`` with this interpreter: an entry point (``src/train.py …``), a script
    (``scripts/x.py …``) or a command (``-m dynaseg.cli.x …``), run in ``cwd`` (the repository
    root) with text stdout/stderr captured; ``env`` replaces the environment, ``kwargs`` go to
    :func:`subprocess.run`. The one way the tests launch our commands."""
    command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )


def experiment_overrides(experiment: str) -> list[str]:
    """``experiment=<name>`` plus the inputs the preset requires on the command line: a SAC
    "-only" row (conf/experiment_parts/sac/scale_only.yaml) needs the baseline run's checkpoint, a
    fine-tuning stage (``*_ft``) the first stage's."""
    overrides = [f"experiment={experiment}"]
    if experiment.endswith("_scale_only"):
        overrides.append("baseline_ckpt=baseline.ckpt")
    if experiment.endswith("_ft"):
        overrides.append("stage1_ckpt=stage1.ckpt")
    return overrides


@functools.cache
def _composed(config_name: str, overrides: tuple[str, ...]) -> DictConfig:
    from dynaseg.run.entry import compose

    return compose(config_name, list(overrides))


def compose_config(
    config_name: str = "train", overrides: list[str] | None = None, output_dir: Path | None = None
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` exactly as the entry points do. Many tests compose the
    same preset: each composition is made once per test process and every caller gets its own
    copy to change."""
    cfg = copy.deepcopy(_composed(config_name, tuple(overrides or [])))
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs (override lists) the basic sweeper launches for ``python src/train.py <overrides>``:
    the experiment's ``hydra.sweeper.params`` expanded as Hydra's BasicSweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from dynaseg.run.entry import compose

    cfg = compose("train", overrides, return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [list(j) for j in BasicSweeper.split_arguments(parsed, None)[0]]


def wandb_records(path: Path) -> Iterator[object]:
    """The protobuf records of an offline ``run-*.wandb`` file.

    The file is a LevelDB-style log (what wandb's ``datastore`` writes): a 7-byte header, then
    32 KiB blocks of chunks, each ``crc32 (4) | length (2) | type (1) | data``; type 1 is a whole
    record, 2/3/4 the first/middle/last piece of one split across blocks.
    """
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # the rest of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        data = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0:  # zero padding at the end of a block
            pos += (block - pos % block) % block
            continue
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


class SignalAtStep(Callback):
    """Test-only callback (``+callbacks.sig._target_=helpers.SignalAtStep``): sends the training
    process a real signal (default SIGTERM) at the start of optimizer step ``step`` (0-based), so
    the signal arrives in the middle of that step. ``group=true`` signals the whole process group
    (loader workers included), as ``timeout``, SLURM preemption and Ctrl+C in a terminal do: start
    the run in its own session (``start_new_session=True``) so the test process is not hit."""

    def __init__(self, step: int, signum: int = int(signal.SIGTERM), group: bool = False) -> None:
        self.step, self.signum, self.group = step, signum, group

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            if self.group:
                assert os.getpgid(0) == os.getpid(), "group=true needs a run in its own session"
                os.killpg(0, self.signum)
            else:
                os.kill(os.getpid(), self.signum)


def record_grid_sample(monkeypatch) -> list:
    """Record every grid handed to ``F.grid_sample`` (SAC's sampling positions) in a list."""
    import torch.nn.functional as F

    grids: list = []
    real = F.grid_sample

    def recording(input, grid, *args, **kwargs):
        grids.append(grid.detach().clone())
        return real(input, grid, *args, **kwargs)

    monkeypatch.setattr(F, "grid_sample", recording)
    return grids


# A still smaller network for tests that only need some checkpoint to run through the entry points
# (4× fewer channels than TINY's: evaluating the 200 default validation scenes takes a fraction).
NARROW = [
    "model.net.backbone.stem_width=8",
    "model.net.backbone.channels=[8,16,16,32]",
    "model.net.decode_head.channels=16",
    "model.net.auxiliary_head.channels=8",
]


def tiny_checkpoint(
    path: Path,
    overrides: list[str] | None = None,
    dataset: type | None = None,
    edit: Callable[[object], None] | None = None,
) -> Path:
    """A checkpoint of the TINY model (random weights; ``overrides`` on top, e.g. ``NARROW``)
    written the way training writes one. ``dataset``: a dataset class whose classes (names,
    palette) the model predicts instead of the synthetic data's; ``edit(module)`` changes the
    module before it is saved."""
    from types import SimpleNamespace

    from dynaseg.run.checkpoints import save_module
    from dynaseg.run.recipes import build_model

    classes = None
    if dataset is not None:
        names = list(dataset.CLASSES)
        palette = [list(colour) for colour in dataset.PALETTE]
        classes = SimpleNamespace(num_classes=len(names), class_names=names, palette=palette)
    module = build_model(compose_config("train", TINY + (overrides or [])), classes)
    if edit is not None:
        edit(module)
    return save_module(module, path)


def synthetic_datamodule(
    num_workers: int,
    seed: int,
    size: int,
    crop: int,
    batch_size: int,
    **kwargs: object,
):
    """A seeded ``SegDataModule`` over 8 synthetic training scenes of ``size``², random
    ``crop``² crops, set up for fitting (the loader tests' common fixture)."""
    from functools import partial

    import lightning as L

    from dynaseg.data.datamodule import SegDataModule
    from dynaseg.data.datasets.synthetic import SyntheticScenes

    L.seed_everything(seed, workers=True)
    dm = SegDataModule(
        partial(SyntheticScenes, length=8, eval_length=2, size=(size, size)),
        crop_size=(crop, crop),
        scale=(size, size),
        test_scale=None,
        batch_size=batch_size,
        num_workers=num_workers,
        **kwargs,
    )
    dm.setup("fit")
    return dm


def shared_run_dir(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """``<session temp>/<name>``, made by ``make(path)`` once per test session: under xdist the
    first worker to ask makes it while the others wait on a file lock, then all read the same
    directory (xdist's own ``--dist loadgroup`` cannot group tests under pytest 9.2: it renames
    ``item._nodeid``, which pytest 9.2 no longer reads). A failed ``make`` leaves no directory,
    so the next test that asks tries again and reports its own failure."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the directory every worker's basetemp is in
    path = root / name
    with FileLock(f"{path}.lock"):
        if not (path / ".made").is_file():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            try:
                make(path)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            (path / ".made").touch()
    return path
