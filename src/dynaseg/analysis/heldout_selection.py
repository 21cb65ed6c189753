"""Choose a setting per arm on a held-out split, then read the verdict on another.

docs/ablations.md (Evidence round 2, protocol E3 (c)): the learning rate of each head is chosen
from a declared grid, per head and condition, by the mean over seeds of the **held-out** metric
(the generator's ``test`` split, ``data.test_split=test test=true``), never by the validation
metric the tables then read. :func:`select_on_heldout` makes that choice from a sweep over the
grid; :func:`selection_argument` turns it into the ``DIR:jobs`` argument of
``scripts/make_table.py``, so the table holds only the chosen runs.

Rule (fixed in the protocol): the candidate with the highest mean over the seeds that every
candidate of the arm ran; ties go to the smallest candidate value.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynaseg.errors import UserError
from dynaseg.reporting.sweeps import Sweep, select


@dataclass(frozen=True)
class HeldoutChoice:
    """The choice for one arm (``group``: the values of the grouping keys)."""

    group: tuple[Any, ...]
    chosen: Any
    scores: dict[Any, float]  # candidate -> mean held-out metric over ``seeds``
    seeds: tuple[Any, ...]
    jobs: tuple[str, ...]  # the chosen candidate's jobs (every seed it ran)


def _key(value: Any) -> Any:
    """A hashable form of a config value (lists become JSON text)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def select_on_heldout(
    sweep: Sweep,
    choice: str,
    groups: Sequence[str],
    metric: Sequence[str] = ("test.mIoU",),
) -> list[HeldoutChoice]:
    """Per arm (the jobs equal in every ``groups`` config path), the value of ``choice`` (a
    config path, e.g. ``model.optimizer.lr``) whose completed runs have the highest mean
    ``metric`` over the seeds all candidates ran (ties: the smallest value)."""
    table: dict[tuple[Any, ...], dict[Any, dict[Any, tuple[float, str]]]] = {}
    for job in sweep.jobs:
        value = job.metric(metric)
        if value is None:
            continue
        group = tuple(_key(select(job.settings, k)) for k in groups)
        candidate = select(job.settings, choice)
        if candidate is None:
            raise UserError(f"job {job.job} has no {choice}: not a sweep over it")
        table.setdefault(group, {}).setdefault(candidate, {})[job.seed] = (value, job.job)
    if not table:
        raise UserError(f"no completed job with {' or '.join(metric)}: run with test=true")
    out = []
    for group, candidates in table.items():
        seeds = set.intersection(*(set(runs) for runs in candidates.values()))
        if not seeds:
            raise UserError(f"arm {group}: no seed was run with every value of {choice}")
        order = sorted(seeds, key=str)
        scores = {c: statistics.fmean(runs[s][0] for s in order) for c, runs in candidates.items()}
        chosen = min(scores, key=lambda c: (-scores[c], c))
        jobs = tuple(job for _, job in candidates[chosen].values())
        out.append(HeldoutChoice(group, chosen, scores, tuple(order), jobs))
    return sorted(out, key=lambda x: tuple(str(v) for v in x.group))


def selection_argument(sweep_dir: str, choices: Sequence[HeldoutChoice]) -> str:
    """``DIR:job,job,...``: the chosen runs of every arm, for ``scripts/make_table.py``. Over
    several sweeps joined as ``A+B`` (job labels ``<dir name>/<job>``), ``A:jobs+B:jobs``."""

    def ordered(jobs: Sequence[str]) -> str:
        return ",".join(
            sorted(jobs, key=lambda j: (not j.isdigit(), int(j) if j.isdigit() else 0, j))
        )

    chosen = [j for c in choices for j in c.jobs]
    parts = sweep_dir.split("+")
    if len(parts) == 1:
        return f"{sweep_dir}:{ordered(chosen)}"
    out = []
    for part in parts:
        prefix = f"{Path(part.rstrip('/')).name}/"
        jobs = [j.removeprefix(prefix) for j in chosen if j.startswith(prefix)]
        if jobs:
            out.append(f"{part}:{ordered(jobs)}")
    return "+".join(out)
