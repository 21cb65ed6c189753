"""SegDataModule's loaders: checked sizes, workers that outlive a group signal, and a resumed
training stream that continues where the checkpoint stopped with or without worker processes."""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import pytest

from dynaseg.data.datamodule import SegDataModule
from dynaseg.data.datasets.synthetic import SyntheticScenes
from dynaseg.errors import ConfigError
from helpers import synthetic_datamodule

SEED = 5


def datamodule(num_workers: int, **kwargs: object) -> SegDataModule:
    """8 tiny training scenes in batches of 2: 4 batches per epoch."""
    return synthetic_datamodule(num_workers, SEED, size=48, crop=32, batch_size=2, **kwargs)


def fingerprints(batches: object) -> list[float]:
    """One number per batch that depends on which samples it holds and how they were augmented."""
    return [round(float(b["image"].double().sum()), 6) for b in batches]  # type: ignore[attr-defined]


def epochs(dm: SegDataModule, n: int) -> list[list[float]]:
    loader = dm.train_dataloader()
    out = []
    for epoch in range(n):
        loader.sampler.set_epoch(epoch)
        out.append(fingerprints(loader))
    return out


@pytest.fixture(scope="module")
def reference() -> list[list[float]]:
    """Two epochs loaded in the main process, never interrupted."""
    return epochs(datamodule(0), 2)


def test_loader_workers_ignore_sigterm_and_sigint(reference: list[list[float]]) -> None:
    """``timeout``/SLURM/Ctrl+C signal the whole process group: the workers must live on (a dead
    worker aborts the main process before it can save), the main process decides when to stop."""
    loader = datamodule(2).train_dataloader()
    loader.sampler.set_epoch(0)
    batches = iter(loader)
    # one batch from each of the two workers (round robin): both have run their worker_init_fn,
    # which is where the signals are ignored (a loaded machine may start the second one late)
    first = [next(batches), next(batches)]
    workers = batches._workers  # type: ignore[attr-defined]
    assert len(workers) == 2, "expected two worker processes"
    for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGINT)
    time.sleep(0.3)
    assert all(w.is_alive() for w in workers)
    assert fingerprints([*first, *batches]) == reference[0]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize(("epoch", "batches"), [(1, 1), (0, 3), (0, 4)])
def test_resumed_stream_continues_after_the_consumed_batches(
    reference: list[list[float]], num_workers: int, epoch: int, batches: int
) -> None:
    """As in a resumed fit: the iterator is created *before* Lightning sets the epoch (workers
    prefetch at once); a checkpoint after the epoch's last batch continues with the next epoch."""
    dm = datamodule(num_workers)
    dm.load_state_dict({"epoch": epoch, "batches": batches, "seed": SEED})
    loader = dm.train_dataloader()
    stream = iter(loader)
    next_epoch = epoch + (batches == 4)
    loader.sampler.set_epoch(next_epoch)
    expected = ([*reference[0], *reference[1]])[epoch * 4 + batches : next_epoch * 4 + 4]
    assert fingerprints(stream) == expected


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("batch_size", 0, "an integer ≥ 1 (samples per batch)"),
        ("batch_size", -2, "an integer ≥ 1 (samples per batch)"),
        ("batch_size", "eight", "an integer ≥ 1 (samples per batch)"),
        ("val_batch_size", 0, "an integer ≥ 1 (samples per batch)"),
        (
            "num_workers",
            -1,
            "an integer ≥ 0 (loader worker processes; 0 loads in the main process)",
        ),
        ("on_bad_sample", "bogus", "one of error, skip"),
    ],
)
def test_loader_settings_are_checked_at_construction(
    key: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        SegDataModule(partial(SyntheticScenes, length=2), **{key: value})  # type: ignore[arg-type]
    assert str(err.value) == f"data.{key}={value!r}: expected {expected}"
