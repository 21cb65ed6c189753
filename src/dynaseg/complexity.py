"""Parameter and FLOP counting shared by ``scripts/complexity.py`` and the logging callback.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: one multiply-add = **2 FLOPs**,
so MACs (the papers' "FLOPs") are FLOPs / 2. Convolutions, matmuls and
``torchvision.ops.deform_conv2d`` (registered here: ``2·out·C_in/groups·k²``) are counted;
elementwise ops, BN, pooling, interpolation and bilinear sampling are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _deform_conv2d_flop(*args: Any, out_shape: Sequence[int], **kwargs: Any) -> int:
    """FLOPs of ``torchvision::deform_conv2d`` (args are shapes): ``2·|out|·C_in/g·k_h·k_w``."""
    weight_shape = args[1]
    return 2 * math.prod(out_shape) * math.prod(weight_shape[1:])


def _custom_mapping() -> dict[Any, Callable[..., int]]:
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    return {torch.ops.torchvision.deform_conv2d: _deform_conv2d_flop}


def count_params(module: nn.Module, exclude: Sequence[str] = ()) -> int:
    """Parameters of ``module`` whose names do not start with any prefix in ``exclude``."""
    return sum(
        p.numel()
        for name, p in module.named_parameters()
        if not any(name == e or name.startswith(e + ".") for e in exclude)
    )


@torch.no_grad()
def count_flops(
    module: nn.Module, *inputs: Any, exclude: Sequence[str] = ()
) -> tuple[int, dict[str, int]]:
    """FLOPs of ``module(*inputs)`` (eval mode), total minus the submodules named in ``exclude``.

    Returns the total and the per-submodule counts (names relative to ``module``, ``""`` = all).
    """
    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False, custom_mapping=_custom_mapping()) as counter:
            module(*inputs)
    finally:
        module.train(was_training)
    per_module: dict[str, int] = {}
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        name = key.split(".", 1)[1] if "." in key else ""
        per_module[name] = int(sum(ops.values()))
    total = int(counter.get_total_flops())
    return total - sum(per_module.get(e, 0) for e in exclude), per_module


def branch_complexity(net: nn.Module, input_size: Sequence[int] | None = None) -> dict[str, int]:
    """DMNet Table 3's basis for a segmentor whose decode head has DMNet-structure branches
    (``dcm_modules``: DMNet, its regular/dilated variants, Inception): their parameters, and —
    for an image of ``input_size`` (H, W) — their multiply-adds (the paper's "FLOPs"). Empty for
    other heads."""
    head = getattr(net, "decode_head", None)
    if head is None or not hasattr(head, "dcm_modules"):
        return {}
    out = {"branch_params": count_params(head.dcm_modules)}
    if input_size:
        param = next(net.parameters())
        image = torch.zeros(1, 3, *[int(v) for v in input_size], dtype=param.dtype)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                feats = net.backbone(image.to(param.device))
            _, per = count_flops(head, feats)
        finally:
            net.train(was_training)
        flops = per.get("dcm_modules", 0) or sum(
            v for k, v in per.items() if k.startswith("dcm_modules.") and k.count(".") == 1
        )
        out["branch_macs"] = flops // 2
    return out
