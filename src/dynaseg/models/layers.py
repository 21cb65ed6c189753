"""Building blocks shared by every head: conv-norm-act, the resize to label size and activation
checkpointing. The per-image (dynamic) depthwise convolution is :mod:`dynaseg.models.ops`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


class ConvNormAct(nn.Sequential):
    """``conv → BatchNorm → ReLU``, the mmsegmentation ``ConvModule`` (names ``conv``/``bn``/``activate``
    are kept so that mmseg checkpoints map onto ours by a plain prefix rename).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: convolution stride.
        padding: zero padding; ``None`` means "same" for odd kernels, ``dilation * (k - 1) // 2``.
        dilation: convolution dilation.
        groups: convolution groups (``in_channels`` gives a depthwise conv).
        norm: add a BatchNorm2d (the conv then has no bias, as in mmseg).
        act: add a ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=not norm,
            )
        }
        if norm:
            layers["bn"] = nn.BatchNorm2d(out_channels)
        if act:
            layers["activate"] = nn.ReLU(inplace=True)
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward_concat(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """``self(torch.cat(parts, dim=1))`` without keeping the concatenation for backward.

        With gradients on, the convolution is applied to each part with its input-channel slice of
        the weight and the results are summed — the same values up to float rounding (a sum taken in
        another order), without the concatenated tensor autograd would save (and its gradient of
        the same size): 134 MB each for DMNet's 4096-channel bottleneck at 2×512². Without
        gradients (inference) the literal concatenation runs, so evaluation is unchanged bit for bit.
        """
        conv = self.conv
        sizes = [int(p.shape[1]) for p in parts]
        if sum(sizes) != conv.in_channels:
            raise ValueError(
                f"ConvNormAct.forward_concat: parts have {sizes} channels (sum {sum(sizes)}), the "
                f"conv expects {conv.in_channels}"
            )
        if not torch.is_grad_enabled() or len(parts) == 1 or conv.groups != 1:
            return self(torch.cat(list(parts), dim=1))
        out: torch.Tensor | None = None
        for part, weight in zip(parts, conv.weight.split(sizes, dim=1), strict=True):
            y = F.conv2d(part, weight, None, conv.stride, conv.padding, conv.dilation)
            out = y if out is None else out.add_(y)  # conv outputs are not saved: in place is safe
        assert out is not None
        if conv.bias is not None:
            out = out + conv.bias[:, None, None]
        for name, module in self.named_children():
            if name != "conv":
                out = module(out)
        return out


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False`` (mmseg's convention for logits and features)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Batch norms in ``module`` normalise as usual but leave their running statistics (and
    ``num_batches_tracked``) untouched — for the recomputation of activation checkpointing, which
    would otherwise update them a second time with the same batch."""
    saved = []
    for bn in module.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats:
            count = None if bn.num_batches_tracked is None else bn.num_batches_tracked.clone()
            saved.append((bn, bn.momentum, count))
            bn.momentum = 0.0
    try:
        yield
    finally:
        for bn, momentum, count in saved:
            bn.momentum = momentum
            if count is not None:
                bn.num_batches_tracked.copy_(count)


def checkpointed(module: nn.Module, *args: Any) -> Any:
    """``module(*args)`` under activation checkpointing: only the inputs are kept, the activations
    are recomputed in backward (non-reentrant; dropout masks are replayed from the saved RNG state
    and batch-norm running statistics are updated once, so results equal the plain call)."""
    return torch.utils.checkpoint.checkpoint(
        module,
        *args,
        use_reentrant=False,
        context_fn=lambda: (nullcontext(), running_stats_frozen(module)),
    )


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that, when no gradient is needed (a frozen backbone, evaluation), pools a
    CPU tensor in ``channels_last`` layout and returns it in the input's layout: the same values
    (a maximum is exact), but torch's CPU forward kernel for contiguous NCHW input is much slower
    here than its NHWC one (a ResNet stem's 3×3/2 pooling of 8×64×64×64: 15.7 ms against 7.8 ms
    with both layout copies; of 8×64×80×80: 24.3 against 6.3 ms; CPU time, one thread). With a
    gradient the NCHW path is kept: its backward is faster than the NHWC one plus the copies.
    Other devices and layouts use ``nn.MaxPool2d`` as it is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            (torch.is_grad_enabled() and x.requires_grad)
            or x.device.type != "cpu"
            or x.dim() != 4
            or self.return_indices
            or not x.is_contiguous()
            or x.is_contiguous(memory_format=torch.channels_last)  # already NHWC (or 1×1 planes)
        ):
            return super().forward(x)
        pooled = super().forward(x.contiguous(memory_format=torch.channels_last))
        return pooled.contiguous()


def channels_last_max_pools(module: nn.Module) -> int:
    """Replace every ``nn.MaxPool2d`` (exactly that class) under ``module`` by a
    :class:`ChannelsLastMaxPool2d` with the same arguments; returns how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.MaxPool2d:
                fast = ChannelsLastMaxPool2d(
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.return_indices,
                    child.ceil_mode,
                )
                setattr(parent, name, fast)
                replaced += 1
    return replaced
