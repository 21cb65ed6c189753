"""The backbone as a random factor: verdicts over independently pretrained backbones.

docs/ablations.md (Evidence round 2, protocol E4): each condition has several miniature backbones
(``backbone_seed`` B: ``experiment=mini_backbone backbone_seed=B``), and every arm runs head seeds
nested in each. The verdict's unit is the backbone: for each backbone and cell, the mean over its
head seeds; then the paired t interval and test **over backbones**, Holm across the table's family.

:func:`by_backbone` gives that to the table builder unchanged: it makes each job's pairing unit
(the ``seed`` the tables pair and average by) its backbone seed, so a cell's runs of one backbone
are averaged (the head seeds) and cells are paired by backbone.
"""

from __future__ import annotations

import dataclasses

from dynaseg.errors import UserError
from dynaseg.tables import Sweep, select

BACKBONE_KEY = "backbone_seed"
DEFAULT_BACKBONE = 0  # runs from before the key existed loaded backbone 0 (conf/scale/mini.yaml)


def by_backbone(sweep: Sweep, key: str = BACKBONE_KEY) -> Sweep:
    """``sweep`` with every job's ``seed`` replaced by its ``key`` (default 0 when its config
    has none), for :func:`dynaseg.tables.build_tables`: cells then hold one value per backbone
    (the mean over its head seeds) and differences are paired by backbone."""
    jobs = []
    for job in sweep.jobs:
        backbone = select(job.settings, key)
        if backbone is None:
            backbone = DEFAULT_BACKBONE
        if not isinstance(backbone, int):
            raise UserError(f"job {job.job}: {key} is {backbone!r}, expected an integer")
        jobs.append(dataclasses.replace(job, settings={**job.settings, "seed": backbone}))
    return dataclasses.replace(sweep, jobs=jobs)
