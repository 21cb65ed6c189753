"""Issue 31: every job of every table sweep composes its paper's recipe (tests/paper_recipes.py).

The sweeps' ``hydra.sweeper.params`` are expanded as Hydra's basic sweeper does and each job is
composed as ``python src/train.py -m experiment=<sweep>`` composes it; its optimizer, LR, schedule
and floor, crop, scale range, cat_max_ratio, photometric distortion, batch × devices, steps,
deep supervision and its weight, backbone and output stride, weights, test scales / flip and test
variants are compared with the paper's declared recipe. The fast tier composes one seed of each
table cell; the slow tier every job (every seed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import CONF_DIR, compose_config, experiment_overrides, sweep_jobs
from paper_recipes import MINIATURES, SWEEPS, expected_recipe, recipe_differences, recipe_of


def table_sweeps() -> list[str]:
    return sorted(p.stem for p in Path(CONF_DIR / "experiment").glob("*table*.yaml"))


def test_every_table_sweep_has_a_declared_recipe() -> None:
    assert set(table_sweeps()) == set(SWEEPS) | MINIATURES


def composed_jobs(experiment: str, every_seed: bool) -> list[dict]:
    base = experiment_overrides(experiment)
    jobs = sweep_jobs(base)
    seeds = sorted({o for job in jobs for o in job if o.startswith("seed=")})
    if not every_seed and seeds:  # one seed: each table cell once
        jobs = [job for job in jobs if seeds[0] in job]
    return [recipe_of(compose_config("train", base + job)) for job in jobs]


def check_sweep(experiment: str, every_seed: bool) -> int:
    """Compare every (or one seed of every) job with the declaration; return the job count."""
    sweep = SWEEPS[experiment]
    expected = expected_recipe(sweep.paper, sweep.dataset, sweep.fixed)
    recipes = composed_jobs(experiment, every_seed)
    fixed = {k: v for k, v in expected.items() if k not in sweep.axes}
    wrong: dict[str, list[int]] = {}  # {field: (composed, declared)} -> the jobs differing so
    for num, recipe in enumerate(recipes):
        if diff := recipe_differences(recipe, fixed):
            wrong.setdefault(str(diff), []).append(num)
    assert not wrong, f"{experiment} ({len(recipes)} jobs): " + "; ".join(
        f"jobs {nums}: {diff}" for diff, nums in wrong.items()
    )
    for key, values in sweep.axes.items():  # a swept field takes exactly the declared values
        assert sorted({str(r[key]) for r in recipes}) == sorted(str(v) for v in values), key
    return len(recipes)


@pytest.mark.parametrize("experiment", sorted(SWEEPS))
def test_each_table_cell_composes_its_papers_recipe(experiment: str) -> None:
    assert check_sweep(experiment, every_seed=False) >= 1


@pytest.mark.slow  # every seed of every cell (~240 compositions)
def test_every_job_of_every_table_sweep_composes_its_papers_recipe() -> None:
    counts = {experiment: check_sweep(experiment, every_seed=True) for experiment in SWEEPS}
    assert sum(counts.values()) == 237, counts
