"""A fabricated Hydra multirun directory for the table-builder tests (no training needed).

DMNet Table 1 miniature layout, 3 filter types x seeds 1, 2 at kernel set {1,3,5,7}:
jobs 0, 1 regular (70 %, 72 %), job 2 depthwise seed 1 (69 %), job 3 (depthwise, seed 2) never
started (no directory), job 4 dynamic seed 1 (80 %), job 5 dynamic seed 2 failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

EXPERIMENT = "dmnet_table1_kernel_sets"


def head(filter_type: str) -> dict:
    return {
        "decode_head": {"filter_type": filter_type, "filter_sizes": [1, 3, 5, 7], "dilations": None}
    }


def write_job(sweep: Path, num: int, filter_type: str, seed: int, miou: float | None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    overrides = [
        f"model.net.decode_head.filter_type={filter_type}",
        f"seed={seed}",
        f"experiment={EXPERIMENT}",
    ]
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra/overrides.yaml")
    provenance = {
        "overrides": overrides,
        "seed": seed,
        "config": {"model": {"net": head(filter_type)}},
        "wall_time_s": 60.0 + num,
        "cpu_time_s": 100.0 + num,
        "steps": 300,
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "hardware": {"cpus": 2, "processor": "x86_64", "torch_threads": 2, "omp_num_threads": "2"},
    }
    if miou is None:
        payload = {"status": "failed", "error": "RuntimeError: boom", "provenance": provenance}
    else:
        payload = {
            "val": {"mIoU": miou},
            "global_step": 300,
            "status": "completed",
            "provenance": provenance,
        }
    (job / "metrics.json").write_text(json.dumps(payload))


def make_fabricated_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    sweep.mkdir(parents=True)
    multirun = {
        "hydra": {
            "sweeper": {
                "params": {
                    "model.net.decode_head.filter_type": "regular,depthwise,dynamic",
                    "seed": "1,2",
                }
            },
            "overrides": {"task": [f"experiment={EXPERIMENT}"]},
            "runtime": {"choices": {"experiment": EXPERIMENT}},
        },
        "seed": 42,
        "model": {"net": head("dynamic")},  # the composed base config, before the sweep params
    }
    OmegaConf.save(OmegaConf.create(multirun), sweep / "multirun.yaml")
    write_job(sweep, 0, "regular", 1, 0.70)
    write_job(sweep, 1, "regular", 2, 0.72)
    write_job(sweep, 2, "depthwise", 1, 0.69)
    write_job(sweep, 4, "dynamic", 1, 0.80)
    write_job(sweep, 5, "dynamic", 2, None)
    return sweep
