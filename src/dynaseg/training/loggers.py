"""Experiment loggers: the W&B logger factory, run metadata (git commit, hardware), finishing.

``conf/logger/*.yaml`` builds the loggers (``csv``, ``tensorboard``, ``wandb``; several at once
with ``logger=[csv,wandb]``); :class:`~dynaseg.training.logging_callback.SegmentationLogging`
writes the same things to each of them.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import Logger, WandbLogger


def git_info(path: str | Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag (tracked files only) of the git checkout holding ``path`` (default:
    this package's sources); ``{"commit": None}`` outside a checkout or without git."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def hardware_info() -> dict[str, Any]:
    """What the run ran on: platform, CPU count, accelerators and library versions."""
    import lightning

    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
    }


def sweep_context() -> dict[str, Any] | None:
    """``{"group", "job_num", "overrides"}`` when running as a Hydra multirun job, else ``None``.

    The group is the sweep directory's name: every job of one sweep shares it.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return {
        "group": Path(hc.sweep.dir).name,
        "job_num": int(hc.job.num),
        "overrides": hc.job.override_dirname,
    }


def wandb_logger(
    project: str = "dynaseg",
    entity: str | None = None,
    group: str | None = None,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    save_dir: str = ".",
    offline: bool = False,
    log_model: bool | str = False,
    job_type: str | None = None,
    notes: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """Lightning's ``WandbLogger`` with the project's conventions (``conf/logger/wandb.yaml``).

    - ``offline=True`` writes the run under ``<save_dir>/wandb/offline-run-*`` (sync it later with
      ``wandb sync``); with ``offline=False`` the ``WANDB_MODE`` environment variable still
      applies (``offline``, ``disabled``), as wandb itself reads it.
    - In a Hydra multirun, ``group`` defaults to the sweep directory's name, so a sweep is one
      W&B group, and ``name`` gets the job number (``<name>-<num>``); the job's overrides go to
      the run's notes.

    The resolved config, git commit and hardware are added to the run config by the training
    recipe and :class:`~dynaseg.training.logging_callback.SegmentationLogging`.
    """
    sweep = sweep_context()
    if sweep is not None:
        group = group or sweep["group"]
        name = f"{name}-{sweep['job_num']}" if name else None
        notes = notes or sweep["overrides"] or None
    return WandbLogger(
        project=project,
        entity=entity,
        group=group,
        name=name,
        tags=list(tags) if tags else None,
        save_dir=save_dir,
        offline=offline,
        log_model=log_model,
        job_type=job_type,
        notes=notes,
        **kwargs,
    )


def finish_loggers(loggers: Iterable[Logger], exit_code: int = 0) -> None:
    """End the W&B run of this job (``wandb.finish``), so the next job of a multirun (same
    process) starts its own run instead of Lightning reusing the open one."""
    if not any(isinstance(lg, WandbLogger) for lg in loggers):
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)
