"""What a job of a ``-m`` sweep settles before it trains: its thread count and whether it has run.

- **Parallel jobs share the cores** (:func:`prepare_parallel_job`). ``hydra/launcher=joblib`` (Hydra's joblib launcher, one
  process per job, ``n_jobs=-1``: one job per CPU) would otherwise give every job all cores' worth
  of torch threads. Each job uses ``max(1, CPUs // n_jobs)`` threads, so one thread per job by
  default; ``hydra.launcher.n_jobs=1`` gives the one job every core. Set explicitly here (not left
  to joblib's environment variables, which yield to an ``OMP_NUM_THREADS`` the user exported).
- **A re-launched sweep finishes only what is missing.** The same command with
  ``hydra.sweep.dir=<the sweep's directory>`` gives every job its old directory; a job whose
  ``metrics.json`` says ``completed`` for the same overrides returns that result without training,
  while missing, failed and interrupted jobs run again — from their own ``checkpoints/last.ckpt``
  when they left one (:func:`resume_checkpoint`; written every N steps and on SIGTERM/SIGINT).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from dynaseg.errors import ConfigError

JOBLIB_LAUNCHER = "JoblibLauncher"


def _hydra_config() -> Any | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def threads_per_job(n_jobs: int, cpus: int) -> int:
    """Torch threads of each of ``n_jobs`` concurrent jobs on ``cpus`` CPUs (joblib's ``n_jobs``
    convention: -1 = one job per CPU, -2 = all CPUs but one, ...)."""
    if n_jobs < 0:
        n_jobs = cpus + 1 + n_jobs
    return max(1, cpus // max(1, n_jobs))


def parallel_job_threads() -> int | None:
    """Torch threads for a job of a joblib sweep (``None`` outside one)."""
    hc = _hydra_config()
    launcher = getattr(hc, "launcher", None) if hc is not None else None
    if launcher is None or not str(launcher.get("_target_", "")).endswith(JOBLIB_LAUNCHER):
        return None
    from joblib import cpu_count  # counts the CPUs this process may use (affinity, cgroups)

    return threads_per_job(int(launcher.get("n_jobs") or -1), cpu_count())


def prepare_parallel_job() -> None:
    """In a job of a joblib sweep: :func:`parallel_job_threads` torch threads, and the platform's
    own multiprocessing start method back as the default (loky installs its own in its workers,
    and data-loader workers started through it fail: ``'Process' object has no attribute 'env'``).
    """
    threads = parallel_job_threads()
    if threads is None:
        return
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # what the provenance records, what loaders see
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(None, force=True)


def completed_before(cfg: DictConfig) -> dict[str, Any] | None:
    """The result of this sweep job from an earlier launch of the same sweep, or ``None``.

    Only multirun jobs are skipped (a single run into an existing directory trains as asked).
    A job directory holding a completed run of *other* overrides is an error: the sweep directory
    belongs to another sweep, and training would overwrite that run's result.
    """
    hc = _hydra_config()
    if hc is None or not str(hc.mode).endswith("MULTIRUN"):
        return None
    path = Path(str(cfg.paths.output_dir)) / "metrics.json"
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):  # no file, or a torn one from a killed job: run it
        return None
    if not isinstance(previous, dict) or previous.get("status") != "completed":
        return None
    had = list((previous.get("provenance") or {}).get("overrides") or [])
    wants = list(hc.overrides.task)
    if sorted(had) != sorted(wants):
        raise ConfigError(
            f"{path} holds a completed run with other overrides ({' '.join(had)}) than job "
            f"{hc.job.get('num')} of this sweep ({' '.join(wants)}): hydra.sweep.dir names "
            "another sweep's directory; re-launch with that sweep's own overrides, or give a "
            "new hydra.sweep.dir"
        )
    print(
        f"job {hc.job.get('num')}: completed in an earlier launch of this sweep, not run again "
        f"({path})",
        flush=True,
    )
    return previous


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The ``last.ckpt`` a not-completed job of this sweep left in its directory, to resume from
    (``None``: outside a sweep, with ``ckpt_path`` set, or no such file)."""
    hc = _hydra_config()
    if hc is None or not str(hc.mode).endswith("MULTIRUN") or cfg.get("ckpt_path"):
        return None
    last = Path(str(cfg.paths.output_dir)) / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    print(f"job {hc.job.get('num')}: resuming from the checkpoint it left ({last})", flush=True)
    return str(last)
