"""Fabricated Hydra multirun directories for the table-builder tests (no training needed).

:func:`make_fabricated_sweep`: DMNet Table 1 miniature layout, 3 filter types x seeds 1, 2 at
kernel set {1,3,5,7}: jobs 0, 1 regular (70 %, 72 %), job 2 depthwise seed 1 (69 %), job 3
(depthwise, seed 2) never started (no directory), job 4 dynamic seed 1 (80 %), job 5 dynamic
seed 2 failed.

:func:`make_stats_sweep`: the same table with seeds 1-4 and values whose statistics the tests
recompute independently (:data:`STATS_VALUES`).

:func:`make_checkpoint_sweep`: runs whose metrics.json holds both checkpoints' scores
(``reported_checkpoint.last`` / ``.best``, :data:`CHECKPOINT_RUNS`), for ``--checkpoint``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

EXPERIMENT = "dmnet_table1_kernel_sets"
COMMIT = "0123456789abcdef"
CLASSES = ("sky", "road", "car", "boat")


def head(filter_type: str, filter_sizes: list[int] | None = None) -> dict:
    sizes = [1, 3, 5, 7] if filter_sizes is None else filter_sizes
    return {"decode_head": {"filter_type": filter_type, "filter_sizes": sizes, "dilations": None}}


def write_job(
    sweep: Path,
    num: int | str,
    filter_type: str,
    seed: int,
    miou: float | None,
    error: str = "RuntimeError: boom",
    filter_sizes: list[int] | None = None,
    commit: str = COMMIT,
    per_class: dict[str, float | None] | None = None,
    hardware: dict | None = None,
    extra: dict | None = None,
) -> None:
    """One job directory; ``miou=None``: a failed job with ``error``; ``hardware``: its
    ``provenance.hardware`` (default: the fields of runs before the CPU setup was recorded).
    ``extra``: more metrics.json entries of a completed job (e.g. ``test``,
    ``reported_checkpoint``)."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    overrides = [
        f"model.net.decode_head.filter_type={filter_type}",
        f"seed={seed}",
        f"experiment={EXPERIMENT}",
    ]
    if filter_sizes is not None:
        overrides.append(f"model.net.decode_head.filter_sizes=[{','.join(map(str, filter_sizes))}]")
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra/overrides.yaml")
    provenance = {
        "overrides": overrides,
        "seed": seed,
        "config": {"model": {"net": head(filter_type, filter_sizes)}},
        "wall_time_s": 60.0 + int(num),
        "cpu_time_s": 100.0 + int(num),
        "steps": 300,
        "git": {"commit": commit, "dirty": False},
        "hardware": hardware
        or {"cpus": 2, "processor": "x86_64", "torch_threads": 2, "omp_num_threads": "2"},
    }
    if miou is None:
        payload = {"status": "failed", "error": error, "provenance": provenance}
    else:
        val: dict = {"mIoU": miou}
        if per_class is not None:
            val["per_class"] = {c: {"IoU": v, "Acc": v} for c, v in per_class.items()}
        payload = {"val": val, "global_step": 300, "status": "completed", "provenance": provenance}
        payload.update(extra or {})
    (job / "metrics.json").write_text(json.dumps(payload))


def write_multirun(sweep: Path, params: dict[str, str]) -> None:
    """The sweep's ``multirun.yaml`` (what the table builder enumerates the jobs from)."""
    multirun = {
        "hydra": {
            "sweeper": {"params": params},
            "overrides": {"task": [f"experiment={EXPERIMENT}"]},
            "runtime": {"choices": {"experiment": EXPERIMENT}},
        },
        "seed": 42,
        "model": {"net": head("dynamic")},  # the composed base config, before the sweep params
    }
    sweep.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(multirun), sweep / "multirun.yaml")


def make_fabricated_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    write_multirun(
        sweep, {"model.net.decode_head.filter_type": "regular,depthwise,dynamic", "seed": "1,2"}
    )
    write_job(sweep, 0, "regular", 1, 0.70)
    write_job(sweep, 1, "regular", 2, 0.72)
    write_job(sweep, 2, "depthwise", 1, 0.69)
    write_job(sweep, 4, "dynamic", 1, 0.80)
    write_job(sweep, 5, "dynamic", 2, None)
    return sweep


# (filter type, kernel sizes) -> mIoU by seed 1..4 (None: no job); per-class IoU for the group
# metric: car = mIoU + 0.05, boat = mIoU - 0.05 (group "vehicles" = car, boat: mean = mIoU)
STATS_VALUES: dict[tuple[str, tuple[int, ...]], list[float | None]] = {
    ("dynamic", (1, 3, 5, 7)): [0.80, 0.82, 0.79, 0.81],
    ("regular", (1, 3, 5, 7)): [0.70, 0.73, 0.69, 0.72],  # dynamic - regular: +10, +9, +10, +9
    ("depthwise", (1, 3, 5, 7)): [0.81, 0.80, 0.80, 0.83],  # dynamic - depthwise: -1, 2, -1, -2
    ("dynamic", (1,)): [0.84, 0.87, 0.83, 0.86],  # {1,3,5,7} - {1}: -4, -5, -4, -5
    ("regular", (1,)): [0.75, None, None, None],  # one seed
}


def make_stats_sweep(root: Path, other_commit_job: int | None = None) -> Path:
    """No multirun.yaml: pass ``paper="dmnet-table1"``. ``other_commit_job`` comes from commit
    ``deadbeef...``."""
    sweep = root / "stats"
    num = 0
    for (filter_type, sizes), values in STATS_VALUES.items():
        for seed, value in enumerate(values, start=1):
            if value is None:
                continue
            per_class = {"sky": 0.9, "road": None, "car": value + 0.05, "boat": value - 0.05}
            commit = "deadbeef00112233" if num == other_commit_job else COMMIT
            write_job(
                sweep,
                num,
                filter_type,
                seed,
                value,
                filter_sizes=list(sizes),
                commit=commit,
                per_class=per_class,
            )
            num += 1
    return sweep


# The DMNet Table 1 miniature (dmnet-table1-mini), one job per head x condition x seed, written as
# a sweep's jobs write them (provenance config; no multirun.yaml: pass paper="dmnet-table1-mini").
MINI_EXPERIMENT = "dmnet_table1_kernel_sets_mini"
MINI_HEADS = {
    "regular": {"filter_type": "regular", "filter_sizes": [1, 3, 5, 7], "dilations": None},
    "depthwise": {"filter_type": "depthwise", "filter_sizes": [1, 3, 5, 7], "dilations": None},
    "dynamic": {
        "filter_type": "dynamic",
        "filter_sizes": [1, 3, 5, 7],
        "dilations": None,
        "context_index": "context",  # a role name since issue #30 (4 before)
    },
}
MINI_ZOOMS = {"zoom": [0.6, 1.6], "fixed": [1.0, 1.0]}
MINI_CLASSES = ("bird", "balloon", "car", "boat", "sheep", "buoy")
CURVE_HEADER = "epoch,step,train/loss,val/IoU.bird,val/IoU.balloon,val/mIoU\n"


def write_mini_job(
    job: Path,
    head: str,
    seed: int,
    per_class: dict[str, float],
    zoom: str = "zoom",
    backbone: int | None = None,
) -> None:
    """One completed miniature run: val mIoU = the mean of ``per_class`` (fractions);
    ``backbone``: its ``backbone_seed`` (``None``: not in its config, as before the key)."""
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"seed={seed}"] + ([f"backbone_seed={backbone}"] if backbone is not None else [])
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra/overrides.yaml")
    config = {
        "seed": seed,
        "model": {"net": {"decode_head": MINI_HEADS[head]}},
        "data": {"dataset": {"zoom_range": MINI_ZOOMS[zoom]}},
        "experiment": MINI_EXPERIMENT,
    }
    if backbone is not None:  # as runs up to 32e78a4 record it: in .hydra/config.yaml only
        OmegaConf.save(
            OmegaConf.create({**config, "backbone_seed": backbone}), job / ".hydra/config.yaml"
        )
    val = {
        "mIoU": sum(per_class.values()) / len(per_class),
        "per_class": {c: {"IoU": v} for c, v in per_class.items()},
    }
    provenance = {"overrides": overrides, "seed": seed, "config": config}
    payload = {"status": "completed", "val": val, "provenance": provenance}
    (job / "metrics.json").write_text(json.dumps(payload))


def make_mini_sweep(root: Path, seeds: int = 5) -> tuple[Path, dict[tuple[str, str, int], dict]]:
    """Regular, depthwise and dynamic {1,3,5,7} x both conditions x ``seeds`` seeds, each class's
    IoU drawn independently (fixed generator) from 50–60 %, and 10 points more on bird and
    balloon for the dynamic head with the zoom: the class groups' differences are not the primary
    metric's. Returns the sweep and ``{(head, condition, seed): per_class}``."""
    rng = np.random.default_rng(29)
    sweep, values, num = root / "mini", {}, 0
    for head in MINI_HEADS:
        for zoom in MINI_ZOOMS:
            for seed in range(1, seeds + 1):
                per_class = {c: float(rng.uniform(0.5, 0.6)) for c in MINI_CLASSES}
                if head == "dynamic" and zoom == "zoom":
                    per_class["bird"] += 0.1
                    per_class["balloon"] += 0.1
                write_mini_job(sweep / str(num), head, seed, per_class, zoom)
                values[(head, zoom, seed)] = per_class
                num += 1
    return sweep, values


# (head, backbone_seed) -> val mIoU (%) of head seeds 1, 2, 3 (zoom condition only)
BACKBONE_VALUES = {
    ("regular", 0): [58.0, 58.4, 57.9],
    ("regular", 1): [59.5, 59.0, 59.9],
    ("regular", 2): [57.0, 57.6, 57.2],
    ("dynamic", 0): [57.0, 57.1, 56.8],
    ("dynamic", 1): [58.9, 58.0, 58.7],
    ("dynamic", 2): [56.1, 56.0, 56.4],
}


def make_backbone_sweep(root: Path) -> Path:
    """:data:`BACKBONE_VALUES` as a sweep of head seeds nested in backbones (every class's IoU
    the run's mIoU; backbone 0 is the default, so its runs' configs do not name it)."""
    sweep, num = root / "sweep", 0
    for (head, backbone), values in BACKBONE_VALUES.items():
        for seed, value in enumerate(values, start=1):
            per_class = dict.fromkeys(MINI_CLASSES, value / 100)
            write_mini_job(sweep / str(num), head, seed, per_class, backbone=backbone or None)
            num += 1
    return sweep


def write_curve_run(job: Path, seed: int, curve: dict[int, float], final: float) -> None:
    """A regular {1,3,5,7} run whose CSV log holds a validation after each ``curve`` step
    (logged at ``step − 1``; bird absent at step 300) and whose final val is ``final``."""
    write_mini_job(job, "regular", seed, dict.fromkeys(MINI_CLASSES, final))
    log = job / "csv/version_0"
    log.mkdir(parents=True)
    rows = ["0,5,2.3,,,\n"]  # a training row
    rows += [
        f"0,{step - 1},,{'' if step == 300 else value},{value},{value}\n"
        for step, value in curve.items()
    ]
    (log / "metrics.csv").write_text(CURVE_HEADER + "".join(rows))


# job -> (filter type, seed, last validation mIoU, the checkpoint tested and its test mIoU, the
# best checkpoint's validation mIoU); None: a metrics.json from before reported_checkpoint.last/best
CHECKPOINT_RUNS: dict[int, tuple[str, int, float, tuple[str, float] | None, float | None]] = {
    0: ("regular", 1, 0.70, ("last", 0.71), 0.74),
    1: ("regular", 2, 0.72, ("last", 0.73), 0.75),
    2: ("dynamic", 1, 0.80, ("best", 0.86), 0.85),  # test_checkpoint=best
    3: ("dynamic", 2, 0.82, None, None),  # no test, no best score recorded
}


def make_checkpoint_sweep(root: Path) -> Path:
    """DMNet Table 1 layout at {1,3,5,7} (pass ``paper="dmnet-table1"``): the runs of
    :data:`CHECKPOINT_RUNS`, their metrics.json written as :func:`dynaseg.run.recipes.train` does."""
    sweep = root / "checkpoints"
    for num, (filter_type, seed, last, tested, best) in CHECKPOINT_RUNS.items():
        extra: dict = {}
        if tested is not None:
            which, test_miou = tested
            extra["test"] = {"mIoU": test_miou}
            extra["reported_checkpoint"] = {
                "test": which,
                "path": f"checkpoints/{which}.ckpt",
                "val": "last validation of the fit",
                "last": {"step": 300, "mIoU": last},
                "best": {"step": 200, "mIoU": best, "path": "checkpoints/best.ckpt"},
            }
        write_job(sweep, num, filter_type, seed, last, extra=extra)
    return sweep
