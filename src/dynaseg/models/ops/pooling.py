"""Adaptive average pooling that exports to ONNX with a dynamic image size.

ONNX has no adaptive pooling (only the global one), and the exporter's decomposition of
``adaptive_avg_pool2d`` to ``k×k`` bins fixes the bin indices for the traced image size. While
exporting (``torch.onnx.is_in_onnx_export()``), :func:`adaptive_avg_pool2d` therefore computes the
bins as two small matrix products (:func:`matmul_adaptive_avg_pool2d`) and global pooling as a
mean; otherwise it is ``F.adaptive_avg_pool2d``. DMNet's filter generator (the ``k×k`` context of
Eq. 1, "Dynamic Multi-scale Filters for Semantic Segmentation", He et al., ICCV 2019), PSP's
pyramid bins and the global poolings of ASPP and CaC-Net pool through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OutputSize = int | tuple[int | None, int | None]


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
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[-2], x.shape[-1]
    out_h = h if out_h is None else int(out_h)
    out_w = w if out_w is None else int(out_w)
    pool_h = adaptive_pool_matrix(h, out_h, x)
    pool_w = adaptive_pool_matrix(w, out_w, x)
    return torch.matmul(torch.matmul(pool_h, x), pool_w.transpose(0, 1))


def adaptive_avg_pool2d(x: torch.Tensor, output_size: OutputSize) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)``; while exporting to ONNX, a mean for global
    pooling and :func:`matmul_adaptive_avg_pool2d` for any other bins (same values)."""
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, output_size)
    if output_size in (1, (1, 1), [1, 1]):
        return x.mean(dim=(-2, -1), keepdim=True)
    return matmul_adaptive_avg_pool2d(x, output_size)


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` pooling through :func:`adaptive_avg_pool2d` (ONNX-exportable)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(input, self.output_size)
