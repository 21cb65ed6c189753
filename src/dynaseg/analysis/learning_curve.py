"""A sweep's tables at an earlier validation: the learning curve of protocol E3 (b).

docs/ablations.md (Evidence round 2, E3 (b)): regular and dynamic heads trained 1200 steps with a
validation every 300; the verdict reads step 1200 (the final validation, in ``metrics.json``), the
curve at 300, 600 and 900 is reported. The intermediate validations are in each run's CSV log
(``<run>/csv/version_*/metrics.csv``, ``conf/logger/csv.yaml``). :func:`at_step` gives a sweep whose
runs carry the validation after ``step`` optimizer steps as their ``val`` metrics (mIoU and per
class IoU), so the unchanged table builder makes every table, ordering and class group at that
step.

Lightning logs a validation at the index of the last training batch before it: the validation
after ``step`` steps is the CSV row with ``step − 1``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any

from dynaseg.errors import UserError
from dynaseg.tables import JobRecord, Sweep
from dynaseg.training.module import safe_metric_name

VAL_PREFIX = "val/"


def job_dir(sweep: Sweep, job: JobRecord) -> Path:
    """The directory of ``job`` (labels are ``<sweep dir name>/<job>`` when several sweeps)."""
    if len(sweep.dirs) == 1:
        return sweep.dirs[0] / job.job
    prefix, _, name = job.job.partition("/")
    for d in sweep.dirs:
        if d.name == prefix:
            return d / name
    raise UserError(f"job {job.job}: no sweep directory named {prefix!r} in {sweep.dirs}")


def validation_at(run_dir: Path, step: int, class_names: list[str]) -> dict[str, Any] | None:
    """The ``val`` metrics (``mIoU``, ``per_class``) logged after ``step`` steps, or ``None``."""
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get("step") != str(step - 1) or not row.get(f"{VAL_PREFIX}mIoU"):
                    continue
                per_class = {}
                for name in class_names:  # a class absent from the images was not logged
                    value = row.get(f"{VAL_PREFIX}IoU.{safe_metric_name(name)}") or ""
                    iou = float(value) if value else math.nan
                    per_class[name] = {"IoU": None if math.isnan(iou) else iou}
                return {"mIoU": float(row[f"{VAL_PREFIX}mIoU"]), "per_class": per_class}
    return None


def at_step(sweep: Sweep, step: int) -> Sweep:
    """``sweep`` with each completed run's ``val`` replaced by its validation after ``step``
    steps (a run without that validation becomes ``missing``, error naming the step)."""
    jobs = []
    for job in sweep.jobs:
        if job.status != "completed":
            jobs.append(job)
            continue
        final = (job.metrics or {}).get("val", {})
        names = list((final.get("per_class") or {}).keys())
        val = validation_at(job_dir(sweep, job), step, names)
        if val is None:
            jobs.append(
                dataclasses.replace(
                    job, status="missing", error=f"no validation after step {step} in its CSV log"
                )
            )
        else:
            jobs.append(dataclasses.replace(job, metrics={**(job.metrics or {}), "val": val}))
    return dataclasses.replace(sweep, jobs=jobs)
