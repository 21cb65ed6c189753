"""Start from another run's weights and freeze parts of the network (``model.init_from``,
``model.freeze``).

The SAC paper's "SAC-single-only" / "SAC-multiple-only" rows (Zhang et al., "Scale-adaptive
Convolutions for Scene Parsing", ICCV 2017, §4.1, Tables 1 and 3) "take the parameters of baseline
model as the initialization" and "fixed the parameters of residual networks and only update the
scale regression layers": ``init_from`` a baseline checkpoint plus ``freeze`` of everything but the
scale regression. Both address parameters by name prefix in the network's namespace
(``backbone``, ``decode_head.conv_seg``, …: the names of ``SegmentationModule.net``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dynaseg.errors import CheckpointNotFoundError, ConfigError
from dynaseg.models.state_dicts import diff_state_dicts, listing, unwrap_state_dict


def under_prefix(name: str, prefixes: Iterable[str]) -> bool:
    """``name`` is one of ``prefixes`` or lies below one (dotted boundary: ``backbone`` matches
    ``backbone.body.conv1.weight``, not ``backbone_x.weight``)."""
    return any(name == p or name.startswith(p.rstrip(".") + ".") for p in prefixes)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint file, in the network's namespace.

    Accepts a Lightning checkpoint of :class:`~dynaseg.training.module.SegmentationModule`
    (``state_dict`` keys ``net.…``: the prefix is removed and the module's other entries, e.g.
    metric buffers, are dropped), a ``{"state_dict": …}`` file (mmseg) or a bare state dict
    (read by :func:`~dynaseg.models.state_dicts.unwrap_state_dict`). Loaded with
    ``weights_only=True``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointNotFoundError(
            f"model.init_from.path '{file}' does not exist; point it at a checkpoint "
            "(.ckpt from a previous run, or a .pth state dict)"
        )
    raw = torch.load(file, map_location="cpu", weights_only=True)
    state = (
        unwrap_state_dict(raw, f"model.init_from.path '{file}'") if isinstance(raw, dict) else {}
    )
    if not state:
        raise ConfigError(
            f"model.init_from.path '{file}' holds no state dict (expected a Lightning checkpoint, "
            "a {'state_dict': ...} file or a dict of tensors)"
        )
    if any(k.startswith("net.") for k in state):
        state = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    return state


def load_init_weights(
    net: nn.Module,
    path: str | Path,
    prefixes: Sequence[str] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Copy weights from a checkpoint into ``net`` and report what did not match.

    Args:
        net: the network (``SegmentationModule.net``).
        path: checkpoint file (see :func:`read_state_dict`).
        prefixes: load only the network entries under these name prefixes (``None``: all).
            Checkpoint entries outside them are skipped and counted.
        strict: every network entry in scope must be found with the same shape, and no
            checkpoint entry in scope may be left over; otherwise a :class:`ConfigError` lists
            them and nothing is loaded. ``False`` loads what matches and reports the rest.

    Returns:
        ``{"loaded": n, "missing": [...], "unexpected": [...], "shape_mismatch": [...],
        "skipped": n}`` — ``missing``: network entries in scope absent from the checkpoint
        (they keep their initialisation); ``unexpected``: checkpoint entries in scope the
        network does not have; ``skipped``: checkpoint entries outside ``prefixes``.
    """
    source = read_state_dict(path)
    target = net.state_dict()
    if prefixes is not None:
        prefixes = list(prefixes)
        unknown = [p for p in prefixes if not any(under_prefix(k, [p]) for k in target)]
        if unknown:
            top = sorted({k.split(".")[0] for k in target})
            raise ConfigError(
                f"model.init_from.prefixes: {unknown} name nothing in the network; its top-level "
                f"modules are {top}"
            )

    def in_scope(k: str) -> bool:
        return prefixes is None or under_prefix(k, prefixes)

    scoped_source = {k: v for k, v in source.items() if in_scope(k)}
    diff = diff_state_dicts(scoped_source, {k: v for k, v in target.items() if in_scope(k)})
    report: dict[str, Any] = {
        "loaded": 0,
        "missing": diff.missing,
        "unexpected": diff.unexpected,
        "shape_mismatch": diff.shape_mismatch,
        "skipped": len(source) - len(scoped_source),
    }
    if strict and diff:
        problems = diff.problems("checkpoint", "network")
        raise ConfigError(
            f"model.init_from: '{path}' does not match the network"
            + (f" under {prefixes}" if prefixes is not None else "")
            + ":\n  "
            + "\n  ".join(problems)
            + "\nSet model.init_from.strict=false to load what matches, or restrict "
            "model.init_from.prefixes."
        )
    matched = {k: v for k, v in scoped_source.items() if k in target and v.shape == target[k].shape}
    net.load_state_dict(matched, strict=False)
    report["loaded"] = len(matched)
    return report


def format_init_report(path: str | Path, report: dict[str, Any]) -> str:
    """One short paragraph for the run log."""
    lines = [
        f"init_from {path}: loaded {report['loaded']} entries, skipped {report['skipped']} "
        "outside the prefixes"
    ]
    for name, key in (
        ("kept their initialisation (not in the checkpoint)", "missing"),
        ("in the checkpoint but not in the network", "unexpected"),
        ("shape differs (not loaded)", "shape_mismatch"),
    ):
        if report[key]:
            lines.append(f"  {len(report[key])} {name}: {listing(report[key])}")
    return "\n".join(lines)


def freeze_parameters(net: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """``requires_grad=False`` for every parameter under ``prefixes``; returns their names.

    Raises :class:`ConfigError` for a prefix that names no parameter.
    """
    names = [n for n, _ in net.named_parameters()]
    unknown = [p for p in prefixes if not any(under_prefix(n, [p]) for n in names)]
    if unknown:
        top = [n for n, _ in net.named_children()]
        raise ConfigError(
            f"model.freeze: {unknown} name no parameter of the network; its top-level modules "
            f"are {top} (e.g. model.freeze=[backbone])"
        )
    frozen = []
    for name, param in net.named_parameters():
        if under_prefix(name, prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def frozen_norm_layers(net: nn.Module, prefixes: Sequence[str]) -> list[nn.Module]:
    """Batch-norm layers (incl. SyncBatchNorm) under ``prefixes``: kept in eval mode while
    training, so their running statistics stay those of the checkpoint."""
    if not prefixes:
        return []
    return [
        m
        for n, m in net.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and under_prefix(n, prefixes)
    ]
