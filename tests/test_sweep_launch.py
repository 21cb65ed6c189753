"""Sweeps that use the machine and survive: ``hydra/launcher=joblib``, one torch thread per job,
re-launching into the sweep's directory runs only the jobs not completed, and a failing job ends
the sweep with the summary table and one ``error:`` line (issue 17 item 5, issue 20 item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynaseg.reporting.sweeps import load_sweep
from dynaseg.run.entry import compose
from dynaseg.run.sweep_jobs import threads_per_job
from helpers import CONF_DIR, ROOT, TINY, experiment_overrides, run_python

# one data-loader worker: loaders must start their workers inside joblib's loky processes too
TINY_LOADER = [o if o != "data.num_workers=0" else "data.num_workers=1" for o in TINY]
SWEEP = [*TINY_LOADER, "debug=fdr", "model.net.decode_head.filter_sizes=[0],[1],[1,3]"]


def job_overrides(filter_sizes: str) -> list[str]:
    """A job's task overrides as Hydra records them (the sweep value replaced by the job's)."""
    return [*TINY_LOADER, "debug=fdr", f"model.net.decode_head.filter_sizes={filter_sizes}"]


def fabricate_completed_job(job_dir: Path, overrides: list[str], miou: float) -> str:
    job_dir.mkdir(parents=True)
    payload = {
        "status": "completed",
        "val": {"mIoU": miou},
        "test": {"mIoU": miou},
        "global_step": 1,
        "provenance": {"overrides": overrides, "seed": 42, "git": {"commit": "f" * 40}},
    }
    text = json.dumps(payload)
    (job_dir / "metrics.json").write_text(text)
    return text


def launch(sweep_dir: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    args = ["src/train.py", "-m", *SWEEP, *extra, f"hydra.sweep.dir={sweep_dir}"]
    return run_python(*args, timeout=900, env=env)


def sweeper_params(experiment: str) -> list[str]:
    """The preset's sweep axes as the basic sweeper reads them (``hydra.sweeper.params``)."""
    cfg = compose("train", experiment_overrides(experiment), return_hydra_config=True)
    return [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]


def sweep_jobs(params: list[str], cli: list[str]) -> list[list[str]]:
    """The jobs the basic sweeper launches for these axes and command-line overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(params + cli)
    return BasicSweeper.split_arguments(parsed, None)[0]


@pytest.mark.parametrize(
    "experiment",
    sorted(
        p.stem
        for p in (CONF_DIR / "experiment").glob("*_table*.yaml")
        if not p.stem.endswith("_mini")
    ),
)
def test_full_scale_table_presets_have_a_seed_axis(experiment: str) -> None:
    params = sweeper_params(experiment)
    jobs = sweep_jobs(params, [])
    seeds = [next(o for o in job if o.startswith("seed=")) for job in jobs]
    per_seed = len(jobs) // 3
    # seeds vary slowest: a whole table per seed, so a sweep stopped early has complete seeds
    assert seeds == ["seed=1"] * per_seed + ["seed=2"] * per_seed + ["seed=3"] * per_seed
    one = sweep_jobs(params, ["seed=1"])  # the command-line value replaces the axis
    assert len(one) == per_seed and all("seed=1" in job for job in one)
    assert len(sweep_jobs(params, ["seed=1,2,3,4,5"])) == 5 * per_seed


def test_threads_per_job_share_the_cpus() -> None:
    assert threads_per_job(-1, 2) == 1  # the default: one job per CPU, one thread each
    assert threads_per_job(-1, 16) == 1
    assert threads_per_job(1, 8) == 8  # hydra.launcher.n_jobs=1: the one job gets every core
    assert threads_per_job(2, 8) == 4
    assert threads_per_job(-2, 8) == 1  # 7 jobs on 8 CPUs
    assert threads_per_job(4, 2) == 1  # more jobs than CPUs: still one thread


@pytest.mark.slow  # a real joblib sweep; fast: threads_per_job, the relaunch refusal, summaries
def test_joblib_sweep_skips_completed_job_limits_threads_and_reports_the_failure(
    tmp_path: Path,
) -> None:
    """Job 0 fails (a user error), job 1 completed in an earlier launch (fabricated: never
    trained again), job 2 trains in a loky worker with one torch thread although the user
    exported OMP_NUM_THREADS=2 (which joblib would pass on to its workers), and a data-loader
    worker."""
    sweep_dir = tmp_path / "sweep"
    before = fabricate_completed_job(sweep_dir / "1", job_overrides("[1]"), 0.4321)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = launch(sweep_dir, "hydra/launcher=joblib", env=env)

    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "SweepJobFailed" not in proc.stderr
    assert "Joblib.Parallel(n_jobs=-1" in proc.stdout + proc.stderr
    # job 1 returned its earlier result without training; its file is untouched
    assert "job 1: completed in an earlier launch of this sweep, not run again" in proc.stdout
    assert (sweep_dir / "1/metrics.json").read_text() == before
    assert "job 0 failed; the sweep goes on" in proc.stdout
    assert "sweep progress: 2 of 3 jobs completed, 1 failed" in proc.stdout  # after the last job
    # job 2 ran in a joblib worker with one torch thread
    trained = json.loads((sweep_dir / "2/metrics.json").read_text())
    assert trained["status"] == "completed"
    assert trained["provenance"]["hardware"]["torch_threads"] == 1
    assert trained["provenance"]["hardware"]["omp_num_threads"] == "1"
    # the summary table, with the failure in it, then exactly one error line at the very end
    assert f"Sweep {sweep_dir}" in proc.stdout and "2 of 3 jobs completed; not completed: 0" in (
        proc.stdout
    )
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| 0 | failed"))
    assert "expected kernel sizes ≥ 1 (DMHead)" in row and "| 43.21 |" in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 3 jobs did not complete: job 0 (failed)")
    assert f"hydra.sweep.dir={sweep_dir} runs only those jobs" in last
    sweep = load_sweep(sweep_dir)
    assert [j.status for j in sweep.jobs] == ["failed", "completed", "completed"]
    assert sweep.commands[0].endswith(" hydra/launcher=joblib")  # how to reproduce the timings


def test_relaunch_into_another_sweeps_directory_is_refused(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    other = "hydra:\n  overrides:\n    task: [seed=7]\n  sweeper:\n    params: {}\n"
    (sweep_dir / "multirun.yaml").write_text(other)
    proc = launch(sweep_dir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: hydra.sweep.dir={sweep_dir} holds another sweep (its ")
    assert "multirun.yaml has the overrides seed=7 and sweeper params {})" in last
    assert not (sweep_dir / "0").exists()  # refused before any job ran


@pytest.mark.slow
def test_killed_sweep_relaunched_finishes_only_the_missing_jobs(tmp_path: Path) -> None:
    """Kill a joblib sweep (the whole process group, SIGKILL) once its first job completed;
    the same command with hydra.sweep.dir re-runs only the others."""
    sweep_dir = tmp_path / "sweep"
    args = [
        "src/train.py",
        "-m",
        *TINY_LOADER,
        "debug=fdr",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=1",
        "model.net.decode_head.filter_sizes=[1],[1,3],[1,3,5]",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = sweep_dir / "0/metrics.json"
    deadline = time.monotonic() + 600
    while not first.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(first.read_text())["status"] == "completed"
    done_before = first.read_text()
    assert not (sweep_dir / "2/metrics.json").exists()

    again = run_python(*args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "job 0: completed in an earlier launch of this sweep, not run again" in again.stdout
    assert first.read_text() == done_before
    assert [j.status for j in load_sweep(sweep_dir).jobs] == ["completed"] * 3
    assert "3 of 3 jobs completed" in again.stdout


@pytest.mark.slow
def test_relaunch_resumes_an_interrupted_job_from_its_last_checkpoint(tmp_path: Path) -> None:
    """A job that stopped early (here: its metrics.json turned back to ``interrupted``) and left
    ``checkpoints/last.ckpt`` continues from it on re-launch instead of starting again."""
    sweep_dir = tmp_path / "sweep"
    args = [
        "src/train.py",
        "-m",
        *TINY,
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "callbacks.fault_tolerance.every_n_steps=1",
        "test=false",
        "model.net.decode_head.filter_sizes=[1]",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    first = run_python(*args, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    metrics_path = sweep_dir / "0/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    last = sweep_dir / "0/checkpoints/last.ckpt"
    assert metrics["global_step"] == 2 and last.is_file()
    metrics["status"] = "interrupted"
    metrics_path.write_text(json.dumps(metrics))

    again = run_python(*args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"job 0: resuming from the checkpoint it left ({last})" in again.stdout
    assert f"resuming from {last} (step 2)" in again.stdout + again.stderr  # the recipe's line
    resumed = json.loads(metrics_path.read_text())
    assert resumed["status"] == "completed" and resumed["global_step"] == 2
