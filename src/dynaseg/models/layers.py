"""Building blocks shared by every head: conv-norm-act and the resize to label size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False`` (mmseg's convention for logits and features)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def dynamic_depthwise_conv2d(
    x: torch.Tensor, filters: torch.Tensor, dilation: int = 1
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
    b, c, h, w = x.shape
    kh, kw = filters.shape[-2:]
    span_h, span_w = dilation * (kh - 1), dilation * (kw - 1)
    pad = (span_w - span_w // 2, span_w // 2, span_h - span_h // 2, span_h // 2)
    out = F.conv2d(
        F.pad(x.reshape(1, b * c, h, w), pad),
        filters.reshape(b * c, 1, kh, kw).to(x.dtype),
        dilation=dilation,
        groups=b * c,
    )
    return out.reshape(b, c, h, w)
