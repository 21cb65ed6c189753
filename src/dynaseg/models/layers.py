"""Building blocks shared by every head: conv-norm-act and the resize to label size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from dynaseg.models import native


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


DynamicConvImpl = Literal["fast", "grouped"]
DYNAMIC_CONV_IMPLS: tuple[str, ...] = ("fast", "grouped")


def same_padding(kh: int, kw: int, dilation: int = 1) -> tuple[int, int, int, int]:
    """``F.pad`` amounts (left, right, top, bottom) that keep the size under a stride-1 ``kh×kw``
    correlation; even kernels get one more on the left/top (mmseg's DCM convention)."""
    span_h, span_w = dilation * (kh - 1), dilation * (kw - 1)
    return (span_w - span_w // 2, span_w // 2, span_h - span_h // 2, span_h // 2)


def grouped_dynamic_depthwise_conv2d(
    x: torch.Tensor, filters: torch.Tensor, dilation: int = 1
) -> torch.Tensor:
    """The reference formulation of :func:`dynamic_depthwise_conv2d`: the batch folded into channels
    and one grouped convolution with ``groups = B·C``, differentiated by autograd.

    Simple and obviously right, but autograd's backward of a grouped convolution with one group per
    (image, channel) is slow on CPU (the filter gradient especially); the default ``impl="fast"``
    gives the same numbers with a hand-written backward.
    """
    b, c, h, w = x.shape
    kh, kw = filters.shape[-2:]
    out = F.conv2d(
        F.pad(x.reshape(1, b * c, h, w), same_padding(kh, kw, dilation)),
        filters.reshape(b * c, 1, kh, kw).to(x.dtype),
        dilation=dilation,
        groups=b * c,
    )
    return out.reshape(b, c, h, w)


def _padded_grouped_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    pad: tuple[int, int, int, int],
    stride: int = 1,
    dilation: int = 1,
) -> torch.Tensor:
    """Grouped conv of ``x (1, G, H, W)`` with ``weight (G, 1, kh, kw)`` after zero-padding by
    ``pad``; symmetric padding goes to the convolution itself (no padded copy of ``x``)."""
    left, right, top, bottom = pad
    if left == right and top == bottom:
        return F.conv2d(
            x, weight, stride=stride, padding=(top, left), dilation=dilation, groups=x.shape[1]
        )
    return F.conv2d(F.pad(x, pad), weight, stride=stride, dilation=dilation, groups=x.shape[1])


class _DynamicDepthwiseConv(torch.autograd.Function):
    """Per-image depthwise correlation whose backward is two more *forward* grouped convolutions.

    With ``xp`` the padded input and ``g`` the output gradient (one ``(b, c)`` plane shown),
    ``out[y, x] = Σ_ij w[i, j] · xp[y + i·d, x + j·d]`` gives

    - ``∂L/∂x = g`` padded the other way round, correlated with the flipped filter ``w[::-1, ::-1]``
      (the transposed convolution written as a correlation);
    - ``∂L/∂w[i, j] = Σ_yx g[y, x] · xp[y + i·d, x + j·d]``: ``xp`` correlated with ``g`` used as an
      ``H×W`` filter at stride ``d``, whose output is exactly ``k×k``.

    Both are the same forward kernel as the forward pass instead of autograd's grouped-convolution
    weight-gradient kernel (which on CPU takes 10–20× the forward for ``k ≥ 5``). Only ``x`` and
    ``filters`` are saved, not a padded copy; odd kernels pad inside the convolution.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, filters: torch.Tensor, dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, filters)
        ctx.dilation = dilation
        b, c, h, w = x.shape
        kh, kw = filters.shape[-2:]
        out = _padded_grouped_conv(
            x.reshape(1, b * c, h, w),
            filters.reshape(b * c, 1, kh, kw),
            same_padding(kh, kw, dilation),
            dilation=dilation,
        )
        return out.reshape(b, c, h, w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, filters = ctx.saved_tensors
        d = ctx.dilation
        b, c, h, w = x.shape
        kh, kw = filters.shape[-2:]
        left, right, top, bottom = same_padding(kh, kw, d)
        grad_out = grad_out.reshape(1, b * c, h, w)
        grad_x = grad_filters = None
        if ctx.needs_input_grad[0]:
            grad_x = _padded_grouped_conv(
                grad_out,
                filters.flip(-2, -1).reshape(b * c, 1, kh, kw),
                (right, left, bottom, top),
                dilation=d,
            ).reshape(b, c, h, w)
        if ctx.needs_input_grad[1]:
            grad_filters = _padded_grouped_conv(
                x.reshape(1, b * c, h, w),
                grad_out.reshape(b * c, 1, h, w),
                (left, right, top, bottom),
                stride=d,
            ).reshape(b, c, kh, kw)
        return grad_x, grad_filters, None


def dynamic_depthwise_conv2d(
    x: torch.Tensor, filters: torch.Tensor, dilation: int = 1, impl: DynamicConvImpl = "fast"
) -> torch.Tensor:
    """Depthwise-convolve each image with its *own* filters ("same" output size).

    This is the ⊛ of DMNet Eq. (1) (and CaC-Net's depthwise conv with the generated kernel D):
    image ``b``'s channel ``c`` is correlated with ``filters[b, c]``. The whole batch is one grouped
    convolution (``groups = B·C``) over the batch folded into channels, so there is no per-sample
    Python loop.

    Even kernel sizes cannot be centred; they are padded one more on the left/top, as
    mmsegmentation's DCM does (``pad = (k-1)//2`` right/bottom, ``k//2`` left/top).

    Args:
        x: features ``(B, C, H, W)``.
        filters: per-image filters ``(B, C, k, k)``.
        dilation: dilation of the filter taps.
        impl: ``"fast"`` (default): on the CPU (float32/float64) the compiled kernel of
            :mod:`dynaseg.models.native`, which applies all taps of one plane while it is in cache
            (forward and both gradients); elsewhere (GPU, bf16, under ``torch.compile`` or without
            a C compiler) a ``1×1`` filter is a per-channel scale ``x · w`` and larger ones use a
            hand-written backward of forward convolutions (:class:`_DynamicDepthwiseConv`).
            ``"grouped"``: the reference :func:`grouped_dynamic_depthwise_conv2d` differentiated by
            autograd. All give the same values and gradients up to float rounding.

    Returns:
        ``(B, C, H, W)``.
    """
    if x.dim() != 4 or filters.dim() != 4 or filters.shape[:2] != x.shape[:2]:
        raise ValueError(
            "dynamic_depthwise_conv2d: expected x (B, C, H, W) and filters (B, C, k, k) with the "
            f"same B and C, got x {tuple(x.shape)} and filters {tuple(filters.shape)}"
        )
    if torch.onnx.is_in_onnx_export():  # a groups=B·C Conv cannot have a dynamic batch in ONNX
        from dynaseg.models.export import shift_add_depthwise_conv2d

        return shift_add_depthwise_conv2d(x, filters, dilation)
    if impl == "grouped":
        return grouped_dynamic_depthwise_conv2d(x, filters, dilation)
    if impl != "fast":
        raise ValueError(f"dynamic_depthwise_conv2d: impl must be one of {DYNAMIC_CONV_IMPLS}")
    device = x.device.type
    if torch.is_autocast_enabled(device):  # the dtype autocast would give the reference's conv2d
        dtype = torch.get_autocast_dtype(device)
        x, filters = x.to(dtype), filters.to(dtype)
    else:
        filters = filters.to(x.dtype)
    if not torch.compiler.is_compiling() and native.supports(x, filters):
        left, _, top, _ = same_padding(*filters.shape[-2:], dilation)
        return native.NativeDynamicDepthwiseConv.apply(x, filters, dilation, left, top)
    if filters.shape[-2:] == (1, 1):
        return x * filters
    with torch.autocast(device, enabled=False):
        return _DynamicDepthwiseConv.apply(x, filters, dilation)
