"""Hydra callbacks of every launch (registered in ``conf/hydra/default.yaml``).

- :class:`CheckOutputPaths`: an unusable output location is a user error, reported before Hydra
  creates the run directory.
- :class:`MultirunSummary`: a sweep's bookkeeping (the re-launch command, progress, the table of
  :mod:`dynaseg.reporting` at the end, exit code 1 if a job did not complete).

A callback's ``SystemExit`` is not caught by Hydra, unlike its exceptions, which it only turns into
warnings: the callbacks end the launch with one error line and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dynaseg.errors import exit_on_user_error, exit_with_message
from dynaseg.reporting.sweeps import load_sweep, shell_quote
from dynaseg.run.directories import check_output_paths


class CheckOutputPaths(Callback):
    """Hydra callback: an unusable output location is a user error, reported before Hydra
    creates the run directory (``hydra.run.dir``; ``hydra.sweep.dir`` for ``-m``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(lambda: check_output_paths(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(lambda: check_output_paths(config, "hydra.sweep.dir"))


def relaunch_command(config: Any) -> str:
    """The command that re-launches this sweep into its own directory (runs only what is missing)."""
    sweep_dir = str(config.hydra.sweep.dir)
    task = list(OmegaConf.select(config, "hydra.overrides.task") or [])
    hydra_overrides = [
        o
        for o in OmegaConf.select(config, "hydra.overrides.hydra") or []
        if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))
    ]
    script = f"src/{OmegaConf.select(config, 'hydra.job.name') or 'train'}.py"
    args = [*task, *hydra_overrides, f"hydra.sweep.dir={sweep_dir}"]
    return " ".join(["python", script, "-m", *map(shell_quote, args)])


def _sweep_definition(config: Any) -> tuple[list[str], dict[str, Any]]:
    task = sorted(str(o) for o in OmegaConf.select(config, "hydra.overrides.task") or [])
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params) if OmegaConf.is_config(params) else dict(params)
    return task, {str(k): str(v) for k, v in params.items()}


class MultirunSummary(Callback):
    """A sweep's bookkeeping (``conf/hydra/default.yaml``), for any launcher (basic, joblib, slurm).

    - At the start: the sweep directory and the command that re-launches the sweep into it. A
      re-launch runs only the jobs not completed (:mod:`dynaseg.run.sweep_jobs`); a
      directory that holds another sweep is refused before any job runs.
    - After a job that failed: "job N failed; the sweep goes on" (its error is in its
      ``metrics.json``; the job itself printed the error line or, for a bug, the traceback).
    - At the end: one table of the jobs' metrics (the paper's layout first when the experiment is
      one of the ablation tables). If a job did not complete, one ``error:`` line and exit code 1.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if not _training_sweep(config):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        previous = sweep_dir / "multirun.yaml"
        if previous.is_file():
            try:
                before = _sweep_definition(OmegaConf.load(previous))
            except Exception:  # unreadable: the jobs' own checks still apply
                before = None
            if before is not None and before != _sweep_definition(config):
                exit_with_message(
                    f"error: hydra.sweep.dir={sweep_dir} holds another sweep (its multirun.yaml "
                    f"has the overrides {' '.join(before[0])} and sweeper params "
                    f"{before[1]}); re-launch it with those, or give a new hydra.sweep.dir",
                    1,
                )
            print(f"Re-launch of the sweep in {sweep_dir}: completed jobs are not run again.")
        else:
            print(f"Sweep directory: {sweep_dir}")
        print(
            f"If the sweep stops early, this runs only the jobs not completed:\n  "
            f"{relaunch_command(config)}",
            flush=True,
        )

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if not _training_sweep(config):
            return
        # imported when a sweep ends, not at every launch: rendering pulls in scipy.stats (≈ 1 s)
        from dynaseg.reporting.rendering import render

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            sweep = load_sweep(sweep_dir)
            text = render(sweep)
        except Exception as err:  # a summary must never turn a finished sweep into a failure
            print(f"multirun summary of {sweep_dir} failed: {type(err).__name__}: {err}")
            return
        print(f"\nSweep {sweep_dir}\n\n{text}\n", flush=True)
        bad = [j for j in sweep.jobs if j.status != "completed"]
        if bad:
            listed = ", ".join(f"{j.job} ({j.status})" for j in bad)
            exit_with_message(
                f"error: {len(bad)} of {len(sweep.jobs)} jobs did not complete: job {listed}; "
                "their errors are in the table above. After fixing the cause, the same command "
                f"with hydra.sweep.dir={sweep_dir} runs only those jobs",
                1,
            )

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        if not str(OmegaConf.select(config, "hydra.mode") or "").endswith("MULTIRUN"):
            return
        if not _training_sweep(config):
            return
        num = OmegaConf.select(config, "hydra.job.num")
        sweep_dir = str(config.hydra.sweep.dir)
        metrics = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir"))) / "metrics.json"
        try:
            status = json.loads(metrics.read_text()).get("status", "completed")
        except (OSError, ValueError, AttributeError):  # no metrics.json: nothing to tell
            status = None
        failed = getattr(job_return, "status", None) == JobStatus.FAILED
        if failed or status not in (None, "completed"):
            print(
                f"job {num} failed; the sweep goes on. "
                f"Table so far: python scripts/make_table.py {sweep_dir}",
                flush=True,
            )
        try:  # the sweep's progress (jobs may end in any order under a parallel launcher)
            jobs = load_sweep(sweep_dir).jobs
        except Exception:
            return
        done = sum(j.status == "completed" for j in jobs)
        bad = sum(j.status in ("failed", "interrupted") for j in jobs)
        print(f"sweep progress: {done} of {len(jobs)} jobs completed, {bad} failed", flush=True)


def _training_sweep(config: Any) -> bool:
    """Only ``src/train.py`` jobs write ``metrics.json`` (eval/predict sweeps get no summary)."""
    return OmegaConf.select(config, "hydra.job.name") in (None, "train")
