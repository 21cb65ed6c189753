"""Selective recomputation: keep the input of a cheap convolution instead of its output.

In a ResNet bottleneck the last 1×1 convolution (``conv3``, and the ``downsample`` 1×1 of a stage's
first block) expands ``C/4`` channels to ``C``; its output is kept for backward only by the batch
norm that follows. Its input is kept anyway (the convolution's own weight gradient needs it), so
instead of the 4×-larger output autograd can keep a note "``conv(input)``" and recompute it when the
norm's backward asks for it: at DMNet-R50-D8's 2×512² that is ~570 MB less to hold for ~3.4% more
convolution FLOPs (the 1×1 expansions run once more). The recomputation is the same convolution on
the same input, so values and gradients are unchanged.

Implemented with :func:`torch.autograd.graph.saved_tensors_hooks` (the mechanism of activation
checkpointing, applied to single tensors): a forward hook on each chosen convolution remembers its
output, and the pack hook swaps that output for the recipe.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def expanding_pointwise_convs(module: nn.Module) -> list[nn.Conv2d]:
    """1×1, stride-1, ungrouped convolutions that expand channels (``out > in``): a ResNet
    bottleneck's ``conv3`` — cheap to recompute relative to the size of their output."""
    return [
        m
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.stride == (1, 1)
        and m.groups == 1
        and m.padding_mode == "zeros"
        and m.out_channels > m.in_channels
    ]


class _Recipe:
    """How to rebuild a convolution's output: the module, its input and the autocast state."""

    __slots__ = ("conv", "input", "version", "autocast")

    def __init__(self, conv: nn.Conv2d, x: torch.Tensor) -> None:
        self.conv, self.input, self.version = conv, x, x._version
        device = x.device.type
        self.autocast = (
            device,
            torch.is_autocast_enabled(device),
            torch.get_autocast_dtype(device),
        )

    def rebuild(self) -> torch.Tensor:
        if self.input._version != self.version:
            raise RuntimeError(
                f"recompute: the input of {self.conv} was modified in place after the forward "
                "pass; its output cannot be recomputed (set model.net.recompute_convs=false)"
            )
        device, enabled, dtype = self.autocast
        with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
            conv = self.conv
            return F.conv2d(
                self.input,
                conv.weight,
                conv.bias,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
            )


@contextmanager
def recomputed_outputs(convs: list[nn.Conv2d]) -> Iterator[None]:
    """Within this context, tensors that autograd saves and that are the output of one of
    ``convs`` (in this forward pass) are stored as a recipe and recomputed in backward."""
    if not convs or not torch.is_grad_enabled():
        yield
        return
    # data_ptr -> (weak reference to the output, recipe); weak, so that an output nobody saves is
    # freed as soon as the forward pass is done with it
    outputs: dict[int, tuple[weakref.ref, _Recipe]] = {}

    def remember(conv: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.requires_grad and len(args) == 1:
            outputs[out.data_ptr()] = (weakref.ref(out), _Recipe(conv, args[0]))

    def pack(t: torch.Tensor) -> Any:
        hit = outputs.get(t.data_ptr())
        if hit is not None and hit[0]() is t:  # the very tensor (not a view sharing its memory)
            return hit[1]
        return t

    def unpack(saved: Any) -> torch.Tensor:
        return saved.rebuild() if isinstance(saved, _Recipe) else saved

    handles = [conv.register_forward_hook(remember) for conv in convs]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield
    finally:
        for handle in handles:
            handle.remove()
        outputs.clear()  # the recipes saved in the graph keep what they need
