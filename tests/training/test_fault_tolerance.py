"""SIGTERM/SIGINT at any step: a resumable checkpoint at that step, exit code 128+signal, and a
resume that reaches the uninterrupted run's weights and metrics exactly (src/train.py subprocesses).

The signals go to the run's whole process group, loader workers included, as ``timeout``, SLURM
preemption and Ctrl+C in a terminal send them; each run is its own session so the test process is
not signalled."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import NO_FIGURES, ROOT, TINY, run_python, shared_run_dir

MAX_STEPS = 10  # 4 steps per epoch (8 samples, batch 2): crosses two epoch boundaries
ARGS = [
    *TINY,
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.val_check_interval=5",
    "seed=3",
    "test=false",
    "extras.print_config=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.lr_monitor=null",
    *NO_FIGURES,
]


def train(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]))
    args = ["src/train.py", *ARGS, f"hydra.run.dir={run_dir}", *extra]
    return run_python(*args, env=env, start_new_session=True)


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict, int]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return ckpt["state_dict"], metrics["val"], ckpt["global_step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference run, trained once per session (xdist workers included)."""
    return shared_run_dir(tmp_path_factory, "uninterrupted", _train_uninterrupted)


def _train_uninterrupted(run_dir: Path) -> None:
    proc = train(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    weights, val, step = final_state(run_dir)
    ref_weights, ref_val, ref_step = final_state(reference)
    assert step == ref_step == MAX_STEPS
    differing = [k for k in ref_weights if not torch.equal(weights[k], ref_weights[k])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"
    assert val["mIoU"] == ref_val["mIoU"] and val["per_class"] == ref_val["per_class"]


def interrupt_and_resume(
    tmp_path: Path, step: int, signum: int, *extra: str, group: bool = False
) -> Path:
    """Signal during ``step`` (to the process group: ``group``) → checkpoint at ``step + 1`` →
    resume to the end."""
    first = train(
        tmp_path / "first",
        "+callbacks.sig._target_=helpers.SignalAtStep",
        f"+callbacks.sig.step={step}",
        f"+callbacks.sig.signum={signum}",
        f"+callbacks.sig.group={group}",
        *extra,
    )
    assert first.returncode == 128 + signum, first.stderr[-3000:]
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    name = {15: "SIGTERM", 2: "SIGINT"}[signum]
    assert first.stderr.count(f"{name} received") == 1, first.stderr[-3000:]  # not once per worker
    assert first.stderr.count("resume with:") == 1
    lines = first.stderr.strip().splitlines()
    assert lines[-2] == f"interrupted by {name} at step {step + 1}: resumable checkpoint {last}"
    assert lines[-1].startswith("resume with: python src/train.py ")
    assert lines[-1].endswith(f" ckpt_path={last}")
    assert "Traceback" not in first.stderr
    assert torch.load(last, weights_only=True)["global_step"] == step + 1
    # a sweep's table flags the run instead of losing it
    assert json.loads((tmp_path / "first" / "metrics.json").read_text())["status"] == "interrupted"

    resumed = train(tmp_path / "resumed", f"ckpt_path={last}", *extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last} (step {step + 1})" in resumed.stderr
    assert "not resumable" not in resumed.stderr  # Lightning's warning; our sampler state is exact
    assert "`weights_only` was not set" not in first.stderr + resumed.stderr
    return tmp_path / "resumed"


def test_sigterm_to_the_process_group_with_workers_then_resume_equals_uninterrupted(
    tmp_path: Path, uninterrupted: Path
) -> None:
    """2 loader workers get the SIGTERM too (as under ``timeout``/SLURM) and live on; the resumed
    run equals the uninterrupted in-process one, so neither workers nor the resume change it."""
    step = random.randrange(MAX_STEPS - 1)  # any step, epoch boundaries and validations included
    print(f"SIGTERM during step {step}")
    resumed = interrupt_and_resume(tmp_path, step, 15, "data.num_workers=2", group=True)
    assert_same_run(resumed, uninterrupted)


@pytest.mark.slow  # the test above already compares two processes' runs weight for weight
def test_same_seed_and_config_give_identical_runs(tmp_path: Path, uninterrupted: Path) -> None:
    proc = train(tmp_path / "again")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(tmp_path / "again", uninterrupted)


@pytest.mark.slow  # the SIGTERM test above covers the same path with the other signal
def test_ctrl_c_with_worker_processes_resumes_exactly(tmp_path: Path, uninterrupted: Path) -> None:
    """Ctrl+C in a terminal signals the process group: 2 workers, SIGINT at a random step, one
    message, resume = the in-process uninterrupted run."""
    step = random.randrange(MAX_STEPS - 1)
    print(f"SIGINT during step {step}")
    resumed = interrupt_and_resume(tmp_path, step, 2, "data.num_workers=2", group=True)
    assert_same_run(resumed, uninterrupted)


@pytest.mark.slow  # fast: the SIGTERM test above resumes from last.ckpt
def test_step_interval_checkpoint_survives_a_hard_kill(tmp_path: Path) -> None:
    """``last.ckpt`` every 2 steps, no validation before step 50: SIGKILL (no handler can run)
    during step 3 leaves the step-2 checkpoint."""
    proc = train(
        tmp_path,
        "trainer.max_steps=6",
        "trainer.val_check_interval=50",
        "callbacks.fault_tolerance.every_n_steps=2",
        "+callbacks.sig._target_=helpers.SignalAtStep",
        "+callbacks.sig.step=3",
        "+callbacks.sig.signum=9",
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.slow
def test_resumed_run_continues_the_same_wandb_run(tmp_path: Path) -> None:
    wandb = ["logger=wandb", "logger.wandb.offline=true"]
    first = train(
        tmp_path / "first",
        *wandb,
        "+callbacks.sig._target_=helpers.SignalAtStep",
        "+callbacks.sig.step=2",
    )
    assert first.returncode == 143, first.stderr[-3000:]
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    run_id = torch.load(last, weights_only=True)["dynaseg_run"]["wandb_run_id"]
    assert run_id and list((tmp_path / "first" / "wandb").glob(f"offline-run-*-{run_id}"))
    resumed = train(tmp_path / "resumed", *wandb, f"ckpt_path={last}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"W&B: continuing run {run_id} (wandb)" in resumed.stderr
    assert list((tmp_path / "resumed" / "wandb").glob(f"offline-run-*-{run_id}"))


def test_a_process_forked_after_the_handlers_leaves_the_signal_to_the_main_process(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A loader worker is forked with the main process's handlers and sets the signals to be
    ignored only in its worker_init_fn: a group signal in between must not be taken (or
    reported) by the worker's copy of the callback. The main process still takes it, once."""
    import signal

    from dynaseg.run.fault_tolerance import FaultTolerance

    callback = FaultTolerance(dirpath=tmp_path)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        callback._install_handlers()
        pid = os.fork()
        if pid == 0:  # the "worker", before its worker_init_fn
            os.kill(os.getpid(), signal.SIGINT)
            os._exit(0 if callback._signum is None else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0  # not interrupted, nothing recorded
        assert callback._signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert callback._signum == signal.SIGTERM
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert capfd.readouterr().err.count("received: finishing the current step") == 1


def test_each_step_reseeds_the_generator_it_draws_from(tmp_path: Path) -> None:
    """Step k's randomness is a function of (seed, k, rank) alone; on the CPU only torch's
    default generator is re-seeded, with the value torch.manual_seed would give it."""
    from types import SimpleNamespace

    from dynaseg.data.sampling import mix_seed
    from dynaseg.run.fault_tolerance import FaultTolerance

    callback = FaultTolerance(tmp_path)
    callback.seed = 7
    trainer = SimpleNamespace(global_step=12, global_rank=1)
    module = SimpleNamespace(device=torch.device("cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.rand(5)  # whatever ran before
        callback.on_train_batch_start(trainer, module, None, 0)
        drawn = torch.rand(5)
        seeded_with = torch.initial_seed()
        torch.manual_seed(mix_seed(7, 12, 1))
        expected = torch.rand(5)
    assert torch.equal(drawn, expected) and seeded_with == mix_seed(7, 12, 1)
