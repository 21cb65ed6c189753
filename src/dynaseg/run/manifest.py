"""Recipe manifest: what a paper preset intends (global batch, GPUs, iterations, LR) vs what a run
actually has, checked at start.

A different global batch is the most common reason a published mIoU is not reproduced: presets say
``data.batch_size: 4  # per process`` for 4 GPUs, and a single-GPU run silently trains with a
quarter of the batch at the full LR. Every paper preset carries a top-level block

.. code-block:: yaml

    manifest: {paper: "<title / table>", global_batch: 16, gpus: 4, nodes: 1,
               max_steps: 80000, lr: 0.01, published: {mIoU: 44.8, eval: "ms+flip"}}

and :func:`check_recipe` compares it with the run: global batch = processes (devices × nodes) ×
``data.batch_size`` × ``trainer.accumulate_grad_batches``; ``max_steps`` (or, for epoch-based
schedules with ``trainer.max_steps: -1``, an optional ``max_epochs``) and the LR. A mismatch is warned about plainly, with
the two fixes (the ``data.batch_size`` that restores the batch, or the linearly scaled LR of Goyal
et al., "Accurate, Large Minibatch SGD", arXiv:1706.02677); a run whose LR already *is* the
linearly scaled one is told so and not warned. Both sides go to ``metrics.json`` (``manifest``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import OmegaConf

from dynaseg.errors import ConfigError

REQUIRED = ("global_batch", "gpus", "max_steps", "lr")


class RecipeMismatchWarning(UserWarning):
    """The run does not follow its preset's published recipe."""


def validate_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``manifest`` block: required keys present, batch divisible over the GPUs."""
    m = dict(manifest)
    missing = [k for k in REQUIRED if m.get(k) is None]
    if missing:
        raise ConfigError(
            f"manifest is missing {missing}; a preset's manifest needs {list(REQUIRED)} "
            "(and optionally paper, nodes, published)"
        )
    m.setdefault("nodes", 1)
    processes = int(m["gpus"]) * int(m["nodes"])
    if int(m["global_batch"]) % processes:
        raise ConfigError(
            f"manifest.global_batch={m['global_batch']} is not divisible by gpus × nodes = "
            f"{processes}"
        )
    return m


def actual_run(cfg: Mapping[str, Any], world_size: int) -> dict[str, Any]:
    """What the composed config and the trainer actually give this run."""
    trainer = cfg.get("trainer", {})
    batch = int(cfg["data"]["batch_size"])
    accumulate = int(trainer.get("accumulate_grad_batches", 1) or 1)
    return {
        "processes": int(world_size),
        "nodes": int(trainer.get("num_nodes", 1) or 1),
        "batch_size_per_process": batch,
        "accumulate_grad_batches": accumulate,
        "global_batch": int(world_size) * batch * accumulate,
        "max_steps": int(trainer.get("max_steps", -1)),  # -1: epoch-based (max_epochs rules)
        "max_epochs": int(trainer.get("max_epochs", -1) or -1),
        "lr": float(cfg["model"]["optimizer"]["lr"]),
    }


def check_recipe(
    manifest: Mapping[str, Any] | None, actual: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Compare the preset's ``manifest`` with the run's ``actual`` (:func:`actual_run`); warn with
    :class:`RecipeMismatchWarning` on a mismatch. Returns ``{intended, actual, mismatches,
    linear_scaled_lr}`` for ``metrics.json``, or ``None`` without a manifest."""
    if not manifest:
        return None
    if OmegaConf.is_config(manifest):
        manifest = OmegaConf.to_container(manifest, resolve=True)
    intended = validate_manifest(manifest)
    mismatches: list[str] = []
    notes: list[str] = []
    want_batch, got_batch = int(intended["global_batch"]), int(actual["global_batch"])
    want_lr, got_lr = float(intended["lr"]), float(actual["lr"])
    scaled_lr = want_lr * got_batch / want_batch
    if got_batch != want_batch:
        per_process = want_batch / (actual["processes"] * actual["accumulate_grad_batches"])
        fix_batch = (
            f"data.batch_size={int(per_process)} (batch size is per process)"
            if per_process == int(per_process)
            else f"{want_batch // int(intended['gpus'])} per GPU on {intended['gpus']} GPUs"
        )
        if abs(got_lr - scaled_lr) <= 1e-9 * max(scaled_lr, 1e-12):
            notes.append(
                f"global batch {got_batch} instead of {want_batch}, with the linearly scaled "
                f"LR {got_lr:g}"
            )
        else:
            mismatches.append(
                f"global batch {got_batch} ({actual['processes']} process(es) × "
                f"{actual['batch_size_per_process']} per process"
                + (
                    f" × {actual['accumulate_grad_batches']} accumulated"
                    if actual["accumulate_grad_batches"] > 1
                    else ""
                )
                + f") but the recipe uses {want_batch} ({intended['gpus']} GPUs × "
                f"{want_batch // (int(intended['gpus']) * int(intended['nodes']))}"
                + (f" on {intended['nodes']} nodes" if int(intended["nodes"]) > 1 else "")
                + f"): set {fix_batch}, or scale the LR linearly: model.optimizer.lr={scaled_lr:g}"
            )
    elif abs(got_lr - want_lr) > 1e-12:
        mismatches.append(f"LR {got_lr:g} but the recipe uses {want_lr:g}")
    if int(actual["max_steps"]) <= 0:
        # an epoch-based schedule (e.g. SAC's 70 epochs): its step count follows the loader,
        # known only once fitting starts, so only a stated epoch count can be compared here
        if intended.get("max_epochs") and int(actual["max_epochs"]) != int(intended["max_epochs"]):
            mismatches.append(
                f"{actual['max_epochs']} epochs but the recipe trains {intended['max_epochs']}"
            )
    elif int(actual["max_steps"]) != int(intended["max_steps"]):
        mismatches.append(
            f"{actual['max_steps']} steps but the recipe trains {intended['max_steps']} "
            f"(trainer.max_steps={intended['max_steps']})"
        )
    paper = intended.get("paper", "the preset's recipe")
    for note in notes:
        rank_zero_info(f"recipe ({paper}): {note}")
    if mismatches:
        rank_zero_warn(
            f"this run does not follow {paper}:\n  - "
            + "\n  - ".join(mismatches)
            + "\nIts published number assumes the recipe.",
            category=RecipeMismatchWarning,
        )
    return {
        "intended": intended,
        "actual": dict(actual),
        "mismatches": mismatches,
        "linear_scaled_lr": scaled_lr,
    }
