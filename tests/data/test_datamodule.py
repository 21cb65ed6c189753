"""SegDataModule's loaders: checked sizes, workers that outlive a group signal but never their
owner, and a resumed training stream that continues where the checkpoint stopped with or without
worker processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from dynaseg.data.datamodule import SegDataModule
from dynaseg.data.datasets.synthetic import SyntheticScenes
from dynaseg.errors import ConfigError
from helpers import ROOT, run_python, synthetic_datamodule

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


# The minimal case: a script that keeps a loader with 2 persistent workers in a variable.
# It reports its pid (the leader of its own process group) and the moment it is done.
KEEPS_A_LOADER = """
import os, time
from hydra.utils import instantiate
from dynaseg.run.entry import compose
cfg = compose("train", ["experiment=quickstart", "data.num_workers=2", "data.dataset.eval_length=4"])
dm = instantiate(cfg.data); dm.setup("fit")
loader = dm.val_dataloader()
for batch in loader: pass
print("done", os.getpid(), time.monotonic(), flush=True)
"""


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        if stat:
            state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                pids.append(int(entry.name))
    return pids


def wait_until_gone(pids: list[int], seconds: float) -> list[int]:
    """The ``pids`` still running (not zombies) after up to ``seconds``."""

    def running(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rindex(")") + 2] != "Z"

    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_script_that_keeps_a_loader_exits_and_leaves_no_worker() -> None:
    """The workers ignore SIGTERM, with which Python's exit handler ends daemonic processes (it
    then waits for them): the loader's exit hook shuts them down first, so the script exits. Its
    own process group, so every process it started can be found afterwards (the hang it fixes
    ends in the timeout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    result = run_python("-c", KEEPS_A_LOADER, env=env, timeout=120, start_new_session=True)
    exited = time.monotonic()  # CLOCK_MONOTONIC: the same clock in the child
    assert result.returncode == 0, result.stderr[-2000:]
    word, pid, done = result.stdout.split()[-3:]
    assert word == "done"
    try:
        assert exited - float(done) < 10  # not the hang, nor torch's 5-s join timeouts
        assert wait_until_gone(live_processes_in_group(int(pid)), 2) == []
    finally:
        for left in live_processes_in_group(int(pid)):  # a failing run leaves nothing behind
            os.kill(left, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc")
def test_workers_die_with_their_owner() -> None:
    """SIGKILL of the owner (no exit hook can run): the kernel ends its workers at once, not
    torch's watchdog up to 5 s later. The owner is a fork of this process (no imports to pay)."""
    import torch
    from torch.utils.data import TensorDataset

    from dynaseg.data.datamodule import OwnedWorkersLoader, seed_worker

    read, write = os.pipe()
    owner = os.fork()
    if owner == 0:  # the owner: start 2 workers, report them, wait to be killed
        try:
            os.close(read)
            data = TensorDataset(torch.arange(8.0))
            loader = OwnedWorkersLoader(data, num_workers=2, worker_init_fn=seed_worker)
            batches = iter(loader)
            next(batches)
            pids = " ".join(str(w.pid) for w in batches._workers)  # type: ignore[attr-defined]
            os.write(write, f"{pids}\n".encode())
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(write)
    with os.fdopen(read) as pipe:
        workers = [int(p) for p in pipe.readline().split()]
    try:
        assert len(workers) == 2 and wait_until_gone(workers, 0) == workers
        os.kill(owner, signal.SIGKILL)
        os.waitpid(owner, 0)
        assert wait_until_gone(workers, 2) == []
    finally:
        for pid in wait_until_gone(workers, 0):
            os.kill(pid, signal.SIGKILL)


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
