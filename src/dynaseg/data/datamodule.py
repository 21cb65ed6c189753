"""One LightningDataModule for every dataset: a dataset factory + mmseg-style pipelines."""

from __future__ import annotations

import atexit
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.utils.data import DataLoader, DistributedSampler

from dynaseg.config_schema import check_values, plain_values
from dynaseg.data.base import SegmentationDataset
from dynaseg.data.datasets.files import FileSegDataset
from dynaseg.data.preflight import preflight
from dynaseg.data.sampling import ResumableSampler, SeededSamples
from dynaseg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    build_train_transform,
)
from dynaseg.errors import ConfigError

DatasetFactory = Callable[..., SegmentationDataset]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count): the most
    loader workers worth starting."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class UnpaddedDistributedSampler(DistributedSampler):
    """Evaluation sampler that gives every sample to exactly one rank (rank ``r`` takes
    ``r, r + W, r + 2W, …``), unlike ``DistributedSampler``, which pads the split by repeating
    samples. Summed confusion matrices then equal the single-process one exactly (mmseg drops the
    padded results for the same reason). Ranks may get one sample more than others; evaluation
    has no per-step collective, so that is harmless."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.indices = list(range(self.rank, len(dataset), self.num_replicas))
        self.num_samples = len(self.indices)
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: Lightning's per-worker, per-rank seeding of torch/random/numpy, then the
    albumentations pipeline's *own* generator, which follows none of them. Without this every
    forked worker (and every DDP rank) replays the same crops, flips and colour jitter.

    Workers also ignore SIGTERM and SIGINT: ``timeout``, SLURM preemption and Ctrl+C in a terminal
    signal the whole process group, and a worker that died of it would abort the main process
    (torch raises "DataLoader worker … killed by signal") before it could save the checkpoint at
    the current step (:mod:`dynaseg.run.fault_tolerance`). The main process alone decides
    when to stop. Since the workers ignore the SIGTERM with which Python's exit handler and
    ``terminate()`` end them, they are bound to their owner instead: shut down at its exit,
    killed at its death (:class:`OwnedWorkersLoader`, :func:`die_with_owner`)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    die_with_owner()
    pl_worker_init_function(worker_id)
    info = torch.utils.data.get_worker_info()
    dataset = info.dataset if info is not None else None
    while hasattr(dataset, "dataset"):  # Subset / wrappers
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(torch.initial_seed() % 2**32)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_live_iterators: weakref.WeakSet[Any] = weakref.WeakSet()
_exit_hook_registered = False
_forked_from_main_thread = False  # set by the owner just before it starts workers; inherited


def die_with_owner() -> None:
    """In a loader worker: be killed (SIGKILL) the moment the owner process dies, e.g. of a
    SIGKILL or out of memory, instead of when torch's watchdog next looks (up to 5 s later).

    Linux's ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the worker ends, so it is
    armed only for workers forked from the owner's main thread (:class:`OwnedWorkersLoader`
    records it); workers of a loader iterated in another thread, or started with ``spawn``,
    rely on torch's watchdog alone. Elsewhere than Linux this does nothing.
    """
    if not _forked_from_main_thread or not sys.platform.startswith("linux"):
        return
    parent = multiprocessing.parent_process()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent.pid:  # the owner died before prctl
        os._exit(0)


def _shut_down_live_workers() -> None:
    """``atexit``: end the workers of every loader iterator still alive, the way deleting the
    iterator does (torch's ``_shutdown_workers``: a stop message, then join). Without it Python's
    multiprocessing exit handler ``terminate()``s them with a SIGTERM they ignore and then waits
    for them forever. Registered after multiprocessing's and torch's own exit handlers, so it runs
    before both (``atexit`` runs last-in first-out)."""
    for iterator in list(_live_iterators):
        shut_down = getattr(iterator, "_shutdown_workers", None)
        if shut_down is not None:
            shut_down()


class OwnedWorkersLoader(DataLoader):
    """A ``DataLoader`` whose worker processes never outlive their owner.

    Its workers ignore SIGTERM and SIGINT (:func:`seed_worker`), so they survive a signal sent to
    the whole process group until the main process has saved. They still end with the owner:

    - when it exits normally, its iterators are shut down first (:func:`_shut_down_live_workers`);
    - when it dies, the kernel kills them (:func:`die_with_owner`; else torch's watchdog within
      5 s);
    - when it drops the iterator or the loader, torch shuts them down as usual.
    """

    def __iter__(self) -> Iterator[Any]:
        global _forked_from_main_thread, _exit_hook_registered
        if self.num_workers == 0:
            return super().__iter__()
        _forked_from_main_thread = threading.current_thread() is threading.main_thread()
        iterator = super().__iter__()
        _live_iterators.add(iterator)
        if not _exit_hook_registered:  # now: after multiprocessing's and torch's hooks
            atexit.register(_shut_down_live_workers)
            _exit_hook_registered = True
        return iterator


def is_file_dataset(factory: DatasetFactory) -> bool:
    target = factory.func if isinstance(factory, functools.partial) else factory
    return isinstance(target, type) and issubclass(target, FileSegDataset)


def rescaled_size(hw: tuple[int, int], scale: Sequence[int]) -> tuple[int, int]:
    """An image's size after mmseg's keep-ratio rescale to ``scale`` at ratio 1.0 (the long side
    fits ``max(scale)``, the short side ``min(scale)``)."""
    factor = min(max(scale) / max(hw), min(scale) / min(hw))
    return round(hw[0] * factor), round(hw[1] * factor)


def warn_if_crop_too_large(
    crop: tuple[int, int], scale: Sequence[int], sizes: list[tuple[int, int]]
) -> None:
    """One warning when the training crop exceeds the median image after rescaling: every sample
    would then be mostly padding (and the step many times slower)."""
    median = tuple(int(v) for v in np.median(np.asarray(sizes), axis=0))
    h, w = rescaled_size(median, scale)  # type: ignore[arg-type]
    if crop[0] > h or crop[1] > w:
        rank_zero_warn(
            f"data.crop_size={list(crop)} is larger than the training images after rescaling: "
            f"{median[1]}×{median[0]} (w×h, median of {len(sizes)}) → {w}×{h} at "
            f"data.scale={list(scale)}; every crop is padded. Expected a crop within {w}×{h}: "
            "lower data.crop_size or raise data.scale"
        )


class SegDataModule(L.LightningDataModule):
    """Train/val/test loaders for any :class:`~dynaseg.data.base.SegmentationDataset`.

    Args:
        dataset: factory ``(split=..., transform=...) -> SegmentationDataset`` (a Hydra
            ``_partial_: true`` config holding the dataset's own arguments, e.g. its root). The
            dataset class is the one home of the class names and palette; the datamodule hands
            them (:attr:`num_classes`, :attr:`class_names`, :attr:`palette`) to the model.
        crop_size: training crop ``(h, w)``.
        scale: dataset scale ``(long, short)`` as in mmseg (``(2048, 512)`` for ADE20K).
        ratio_range: training random-rescale range.
        cat_max_ratio: single-class cap of the random crop.
        test_scale: evaluation resize (keep ratio); ``None`` = the image as is.
        mean, std: normalisation (ImageNet by default).
        ignore_index: label value ignored by loss and metric; also the label pad value.
        batch_size: training batch size per process.
        val_batch_size: evaluation batch size (1 for datasets with varying image sizes).
        num_workers: loader workers, capped at the CPUs this process may use.
        train_split, val_split, test_split: split names passed to the dataset.
        photometric: use the photometric distortion in training.
        preflight: check on-disk splits before use (:mod:`dynaseg.data.preflight`).
        on_bad_sample: ``error`` (fail fast, listing the files) or ``skip`` (leave them out,
            counted in ``metrics.json``).
        preflight_cache_dir: where check results are cached (default ``~/.cache/dynaseg``).
    """

    def __init__(
        self,
        dataset: DatasetFactory,
        crop_size: Sequence[int] = (512, 512),
        scale: Sequence[int] = (2048, 512),
        ratio_range: Sequence[float] = (0.5, 2.0),
        cat_max_ratio: float = 0.75,
        test_scale: Sequence[int] | None = (2048, 512),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
        batch_size: int = 4,
        val_batch_size: int = 1,
        num_workers: int = 4,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        photometric: bool = True,
        pin_memory: bool = False,
        preflight: bool = True,
        on_bad_sample: str = "error",
        preflight_cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        # the types and ranges of conf/data live in dynaseg.config_schema (checked here too for
        # library use; the entry points check the whole config before building anything)
        check_values(
            "data",
            plain_values(
                crop_size=crop_size,
                scale=scale,
                test_scale=test_scale,
                batch_size=batch_size,
                val_batch_size=val_batch_size,
                num_workers=num_workers,
                on_bad_sample=on_bad_sample,
            ),
        )
        self.preflight = preflight
        self.on_bad_sample = on_bad_sample
        self.preflight_cache_dir = Path(preflight_cache_dir) if preflight_cache_dir else None
        self.bad_samples: dict[str, list[str]] = {}  # split → skipped files' problems
        # progress bars of the pre-flight check: off in library use (a notebook's or a test's
        # setup()); the entry points' recipes switch them on for an interactive terminal
        self.progress_bars = False
        self.crop_size, self.scale = tuple(int(c) for c in crop_size), tuple(scale)
        self.dataset_factory = dataset
        self.dataset_class: type[SegmentationDataset] = getattr(dataset, "func", dataset)
        if not getattr(self.dataset_class, "CLASSES", None):
            raise ConfigError(
                f"data.dataset._target_ must name a dataset class with CLASSES (a "
                f"SegmentationDataset subclass), got {self.dataset_class!r}"
            )
        self.ignore_index = ignore_index
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = min(num_workers, available_cpus())
        self.pin_memory = pin_memory
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.train_transform = build_train_transform(
            crop_size,
            scale,
            ratio_range,
            cat_max_ratio,
            photometric=photometric,
            mean=mean,
            std=std,
            ignore_index=ignore_index,
        )
        self.eval_transform = build_eval_transform(test_scale, mean, std)
        self.datasets: dict[str, SegmentationDataset] = {}
        self.train_sampler: ResumableSampler | None = None
        self._resume_state: dict[str, int] | None = None

    def make_dataset(self, stage: str) -> SegmentationDataset:
        """Build the dataset of ``stage`` (train/val/test) with its pipeline."""
        transform = self.train_transform if stage == "train" else self.eval_transform
        # on-disk datasets list incomplete pairs instead of raising; the pre-flight check decides
        lenient = {}
        if self.preflight and is_file_dataset(self.dataset_factory):
            lenient = {"strict": False}
        return self.dataset_factory(split=self.splits[stage], transform=transform, **lenient)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"]}.get(
            stage or "fit", ["train", "val", "test"]
        )
        for name in wanted:
            if name not in self.datasets:
                self.datasets[name] = self.make_dataset(name)
                self.check_before_use(name)
        # In-process loading (num_workers=0): seed the pipeline from the (seed_everything) torch
        # seed and the rank, so runs repeat and DDP ranks differ.
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self.train_transform.set_random_seed((torch.initial_seed() + 1000 * rank) % 2**32)

    def check_before_use(self, stage: str) -> None:
        """Pre-flight check of an on-disk split (:mod:`dynaseg.data.preflight`) and, for training,
        one warning if the crop is larger than the rescaled images."""
        ds = self.datasets[stage]
        sizes: list[tuple[int, int]] = []
        if isinstance(ds, FileSegDataset) and self.preflight:
            report = preflight(
                ds, self.on_bad_sample, self.preflight_cache_dir, progress=self.progress_bars
            )
            sizes = report.image_sizes
            if report.n_problems:
                self.bad_samples[ds.split] = [m for v in report.problems.values() for m in v]
                rank_zero_warn(
                    f"data.on_bad_sample=skip: skipping {report.n_problems} bad sample file(s) of "
                    f"split {ds.split!r} ({len(ds)} left); listed in metrics.json (bad_samples)"
                )
        elif hasattr(ds, "size"):  # generated data (synthetic scenes) of one known size
            sizes = [tuple(int(v) for v in ds.size)]  # type: ignore[attr-defined]
        if stage == "train" and sizes:
            warn_if_crop_too_large(self.crop_size, self.scale, sizes)

    @property
    def num_classes(self) -> int:
        return len(self.dataset_class.CLASSES)

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset_class.CLASSES)

    @property
    def palette(self) -> list[list[int]]:
        return [list(c) for c in self.dataset_class.PALETTE]

    def _loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.datasets[stage]
        sampler = None
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if shuffle:
            # Order and augmentations are functions of (seed, epoch, position): resumable exactly.
            # Lightning leaves DistributedSampler subclasses alone (no sampler injected).
            sampler = ResumableSampler(dataset, world, rank, seed=torch.initial_seed() % 2**31)
            if self._resume_state is not None:
                self._resume_sampler(sampler, batch_size)
            self.train_sampler = sampler
            dataset = SeededSamples(dataset)
        elif world > 1:
            sampler = UnpaddedDistributedSampler(dataset, world, rank)
        return OwnedWorkersLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=seed_worker,
        )

    def _resume_sampler(self, sampler: ResumableSampler, batch_size: int) -> None:
        """Point ``sampler`` at the checkpoint's place in the training stream.

        The sampler is moved to the checkpoint's epoch here, not left to Lightning's
        ``set_epoch``: a resumed fit creates its first iterator *before* it sets the epoch, and
        loader workers draw their first indices at once, so they would replay epoch 0. A
        checkpoint at the last batch of an epoch resumes at the start of the next one, as
        Lightning's loop does.
        """
        state, self._resume_state = self._resume_state, None
        assert state is not None
        epoch, batches = state["epoch"], state["batches"]
        if batches >= len(sampler) // batch_size:  # drop_last: the epoch was complete
            epoch, batches = epoch + 1, 0
        sampler.seed = state["seed"]
        sampler.set_epoch(epoch)
        sampler.resume_from(epoch, batches * batch_size)
        # Lightning warns that a mid-epoch resume of a loader without its own state_dict is
        # "unreliable"; here the datamodule's state (epoch, batches, seed) restores the order and
        # the augmentations exactly (tests/training/test_fault_tolerance.py), so the warning
        # would be wrong. Only this process, which resumes through that state, drops it.
        warnings.filterwarnings(
            "ignore",
            message="You're resuming from a checkpoint that ended before the epoch",
            category=PossibleUserWarning,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, shuffle=False)

    def state_dict(self) -> dict[str, Any]:
        """Where the training stream is: epoch, batches the fit loop consumed in it, seed."""
        trainer, sampler = self.trainer, self.train_sampler
        if trainer is None or sampler is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": sampler.epoch, "batches": int(progress.processed), "seed": sampler.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training stream after the batches the checkpoint had consumed."""
        if {"epoch", "batches", "seed"} <= set(state_dict):
            self._resume_state = {k: int(state_dict[k]) for k in ("epoch", "batches", "seed")}
