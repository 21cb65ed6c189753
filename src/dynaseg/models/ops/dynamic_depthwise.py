"""The per-image ("dynamic") depthwise convolution and its implementations.

This is the ⊛ of DMNet Eq. (1) ("Dynamic Multi-scale Filters for Semantic Segmentation", He et
al., ICCV 2019) and CaC-Net's depthwise convolution with the generated kernel D ("CaC-Net:
Context-adaptive Convolution Network", Liu et al., ECCV 2020, arXiv:2004.08222, Eq. 1). One
dispatcher, :func:`dynamic_depthwise_conv2d`, picks among five formulations with equal values:
the compiled CPU kernel (:mod:`dynaseg.models.ops.native`, C source in ``csrc/``), a per-channel
scale for ``1×1`` filters, grouped convolutions with a hand-written backward
(:class:`_DynamicDepthwiseConv`), the autograd reference
(:func:`grouped_dynamic_depthwise_conv2d`) and, while exporting to ONNX,
:func:`shift_add_depthwise_conv2d`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from dynaseg.models.ops import native

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
            :mod:`dynaseg.models.ops.native`, which applies all taps of one plane while it is in cache
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
    if native.supports(x, filters):
        left, _, top, _ = same_padding(*filters.shape[-2:], dilation)
        return native.NativeDynamicDepthwiseConv.apply(x, filters, dilation, left, top)
    if filters.shape[-2:] == (1, 1):
        return x * filters
    with torch.autocast(device, enabled=False):
        return _DynamicDepthwiseConv.apply(x, filters, dilation)


def shift_add_depthwise_conv2d(
    x: torch.Tensor, filters: torch.Tensor, dilation: int = 1
) -> torch.Tensor:
    """Per-image depthwise correlation ``out[b, c] = x[b, c] ⋆ filters[b, c]`` ("same" size) as
    ``k²`` shifted slices times one tap each: Pad, Slice, Mul and Add only, every size taken from
    the input, so an ONNX export keeps batch and image size dynamic (:mod:`dynaseg.models.export`).

    Identical in result and padding convention to
    :func:`dynamic_depthwise_conv2d` (even kernels: one more zero on the
    left/top): ``out[b, c, y, x] = Σ_ij x_pad[b, c, y + i·d, x + j·d] · filters[b, c, i, j]``.

    Args:
        x: features ``(B, C, H, W)``.
        filters: per-image filters ``(B, C, k_h, k_w)``.
        dilation: dilation of the filter taps.
    """
    kh, kw = int(filters.shape[-2]), int(filters.shape[-1])
    padded = F.pad(x, same_padding(kh, kw, dilation))
    h, w = x.shape[-2], x.shape[-1]
    filters = filters.to(x.dtype)
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = filters[:, :, i : i + 1, j : j + 1]
            term = (
                padded[:, :, i * dilation : i * dilation + h, j * dilation : j * dilation + w] * tap
            )
            out = term if out is None else out + term
    assert out is not None
    return out
