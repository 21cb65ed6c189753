"""Experiment loggers: the W&B logger factory and the sweep a job belongs to.

``conf/logger/*.yaml`` builds the loggers (``csv``, ``tensorboard``, ``wandb``; several at once
with ``logger=[csv,wandb]``); :class:`~dynaseg.training.logging_callback.SegmentationLogging`
writes the same things to each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger


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
