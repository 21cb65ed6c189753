"""What a run was: the provenance fields every ``metrics.json`` carries.

A sweep's table must be rebuildable from its ``metrics.json`` files alone, so each run records the
overrides it was launched with, the resolved head/backbone settings, seed, wall and CPU time,
optimizer steps, parameter counts, the git commit of the code and the machine, including what
decides which CPU kernels ran (:func:`dynaseg.environment.hardware_info`; see
``dynaseg.reporting``).
"""

from __future__ import annotations

import resource
import time
from typing import Any

import torch
from omegaconf import Container, DictConfig, OmegaConf

from dynaseg.complexity import branch_complexity
from dynaseg.environment import git_info, hardware_info


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (data-loader workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class RunClock:
    """Wall and CPU seconds since construction (CPU time matters when the cores are shared:
    wall time then measures the neighbours as much as the run)."""

    def __init__(self) -> None:
        self.wall_start = time.perf_counter()
        self.cpu_start = cpu_seconds()

    def elapsed(self) -> dict[str, float]:
        return {
            "wall_time_s": round(time.perf_counter() - self.wall_start, 2),
            "cpu_time_s": round(cpu_seconds() - self.cpu_start, 2),
        }


def hydra_job() -> dict[str, Any]:
    """The launch overrides, job number and chosen config groups (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {"overrides": [], "job_num": None, "choices": {}}
    hc = HydraConfig.get()
    return {
        "overrides": list(hc.overrides.task),
        "job_num": hc.job.get("num"),
        "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")},
    }


def _container(node: Any) -> Any:
    """Resolved plain-Python copy of a config node; unresolved if an interpolation cannot be."""
    if not isinstance(node, Container):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # a `???` or a ${hydra:...} outside Hydra: keep the raw text
        return OmegaConf.to_container(node, resolve=False)


def count_parameters(module: torch.nn.Module | None) -> int | None:
    return None if module is None else sum(p.numel() for p in module.parameters())


def describe_run(cfg: DictConfig, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """The provenance block of ``metrics.json`` (everything but the timings and steps)."""
    job = hydra_job()
    model_cfg = cfg.get("model") or {}
    data_cfg = cfg.get("data") or {}
    trainer_cfg = cfg.get("trainer") or {}
    net = getattr(model, "net", None)
    params = None
    if net is not None:
        params = {
            "total": count_parameters(net),
            "decode_head": count_parameters(getattr(net, "decode_head", None)),
            "auxiliary_head": count_parameters(getattr(net, "auxiliary_head", None)),
            "backbone": count_parameters(getattr(net, "backbone", None)),
        }
    return {
        "overrides": job["overrides"],
        "job_num": job["job_num"],
        "choices": job["choices"],
        "experiment": job["choices"].get("experiment"),
        "tags": list(cfg.get("tags") or []),
        "seed": cfg.get("seed"),
        "git": git_info(),
        "config": {
            "backbone_seed": cfg.get("backbone_seed"),  # the miniature's backbone (E4)
            "model": {
                "net": _container(model_cfg.get("net")),
                "optimizer": _container(model_cfg.get("optimizer")),
                "aux_loss_weight": model_cfg.get("aux_loss_weight"),
                "freeze": _container(model_cfg.get("freeze")),  # SAC "-only" rows
            },
            "data": {
                "dataset": _container(data_cfg.get("dataset")),
                "crop_size": _container(data_cfg.get("crop_size")),
                "batch_size": data_cfg.get("batch_size"),
            },
            "trainer": {
                k: _container(trainer_cfg.get(k))
                for k in ("max_steps", "val_check_interval", "devices", "precision", "fast_dev_run")
            },
        },
        "params": params,
        # DMNet Table 3's basis (branches only); multiply-adds only if complexity_input_size is set
        "complexity": branch_complexity(net, cfg.get("complexity_input_size"))
        if net is not None
        else None,
        "hardware": hardware_info(),  # CPU model, kernel-selecting ISA flags, libraries, threads
    }
