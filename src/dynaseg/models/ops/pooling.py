"""Adaptive average pooling that exports to ONNX with a dynamic image size.

ONNX has no adaptive pooling (only the global one), and the exporter's decomposition of
``adaptive_avg_pool2d`` to ``k×k`` bins fixes the bin indices for the traced image size. While
exporting (``torch.onnx.is_in_onnx_export()``), :func:`adaptive_avg_pool2d` therefore computes the
bins as two small matrix products (:func:`matmul_adaptive_avg_pool2d`) and global pooling as a
mean. Otherwise it is ``F.adaptive_avg_pool2d``, computed for bins other than ``1×1`` by the
compiled CPU kernel (:func:`dynaseg.models.ops.native.adaptive_avg_pool2d`, the same floats,
5–9× faster for DMNet's ``k×k`` context on 16×16 features) when the input is a contiguous CPU
float tensor that needs no gradient. DMNet's filter generator (the ``k×k`` context of
Eq. 1, "Dynamic Multi-scale Filters for Semantic Segmentation", He et al., ICCV 2019), PSP's
pyramid bins and the global poolings of ASPP and CaC-Net pool through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dynaseg.models.ops import native

OutputSize = int | tuple[int | None, int | None]


def _output_hw(output_size: OutputSize, h: int, w: int) -> tuple[int, int]:
    """``output_size`` as ``(out_h, out_w)``, ``None`` meaning the input's size."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    return (h if out_h is None else int(out_h)), (w if out_w is None else int(out_w))


def adaptive_pool_matrix(size: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, size)`` averaging matrix of adaptive average pooling along one axis.

    Bin ``i`` averages positions ``floor(i·size/bins) ≤ p < ceil((i+1)·size/bins)``, PyTorch's
    ``adaptive_avg_pool`` bins; built from ``arange`` so ``size`` may be dynamic.
    """
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * size, bins, rounding_mode="floor")
    end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode="floor")
    position = torch.arange(size, device=like.device)
    inside = (position[None, :] >= start[:, None]) & (position[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def matmul_adaptive_avg_pool2d(x: torch.Tensor, output_size: OutputSize) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` as ``P_h · x · P_wᵀ`` with :func:`adaptive_pool_matrix`: two
    matrix products that export with dynamic height and width."""
    h, w = x.shape[-2], x.shape[-1]
    out_h, out_w = _output_hw(output_size, h, w)
    pool_h = adaptive_pool_matrix(h, out_h, x)
    pool_w = adaptive_pool_matrix(w, out_w, x)
    return torch.matmul(torch.matmul(pool_h, x), pool_w.transpose(0, 1))


def adaptive_avg_pool2d(x: torch.Tensor, output_size: OutputSize) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)``, bit for bit (for bins other than ``1×1`` on a
    contiguous CPU float tensor that needs no gradient, by the compiled kernel); while exporting to
    ONNX, a mean for global pooling and :func:`matmul_adaptive_avg_pool2d` for any other bins
    (same values up to float rounding)."""
    if not torch.onnx.is_in_onnx_export():
        if x.dim() == 4:
            out_h, out_w = _output_hw(output_size, int(x.shape[-2]), int(x.shape[-1]))
            # 1×1 is a mean in PyTorch (another order of summation): left to it
            if out_h > 0 and out_w > 0 and (out_h, out_w) != (1, 1) and native.can_pool(x):
                return native.adaptive_avg_pool2d(x, out_h, out_w)
        return F.adaptive_avg_pool2d(x, output_size)
    if output_size in (1, (1, 1), [1, 1]):
        return x.mean(dim=(-2, -1), keepdim=True)
    return matmul_adaptive_avg_pool2d(x, output_size)


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` pooling through :func:`adaptive_avg_pool2d` (ONNX-exportable)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(input, self.output_size)
