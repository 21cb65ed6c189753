"""Export-friendly formulations of ops whose training-time form does not export to ONNX.

The per-image depthwise convolution of DMNet (Eq. 1, "Dynamic Multi-scale Filters for Semantic
Segmentation", He et al., ICCV 2019) and CaC-Net ("CaC-Net: Context-adaptive Convolution
Network", Liu et al., ECCV 2020, §3.2) runs at training time as one grouped convolution with
``groups = B·C`` (:func:`~dynaseg.models.ops.dynamic_depthwise_conv2d`). ONNX's ``Conv`` takes
its weight and ``group`` as fixed per graph, so that form exports neither with a dynamic batch nor
with generated (non-constant) weights. :func:`~dynaseg.models.ops.shift_add_depthwise_conv2d` computes the same
correlation as ``k²`` shifted slices of the zero-padded input, each multiplied by one filter tap
(``(B, C, 1, 1)``, broadcast) and summed: only Pad, Slice, Mul and Add, with every size taken
from the input, so batch and image size stay dynamic. It costs the same multiply-adds as the
depthwise conv but is slower in eager PyTorch, so it is used only while exporting
(``torch.onnx.is_in_onnx_export()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


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


def matmul_adaptive_avg_pool2d(x: torch.Tensor, output_size: int | tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` as ``P_h · x · P_wᵀ`` with :func:`adaptive_pool_matrix`.

    ONNX has no adaptive pooling (only the global one), and the exporter's decomposition of
    ``adaptive_avg_pool2d`` to ``k×k`` bins fixes the bin indices for the traced image size. As
    two small matrix products it exports with dynamic height and width; DMNet's filter generator
    (``k×k`` context, Eq. 1) and PSP's pyramid bins need it.
    """
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[-2], x.shape[-1]
    out_h = h if out_h is None else int(out_h)
    out_w = w if out_w is None else int(out_w)
    pool_h = adaptive_pool_matrix(h, out_h, x)
    pool_w = adaptive_pool_matrix(w, out_w, x)
    return torch.matmul(torch.matmul(pool_h, x), pool_w.transpose(0, 1))


@contextmanager
def exportable_ops() -> Iterator[None]:
    """While exporting: ``F.adaptive_avg_pool2d`` → :func:`matmul_adaptive_avg_pool2d` (global
    pooling stays a mean). The per-image depthwise conv switches by itself
    (:func:`~dynaseg.models.ops.dynamic_depthwise_conv2d` checks ``is_in_onnx_export``)."""
    original = F.adaptive_avg_pool2d

    def pool(x: torch.Tensor, output_size: Any) -> torch.Tensor:
        if output_size in (1, (1, 1), [1, 1]):
            return x.mean(dim=(-2, -1), keepdim=True)
        return matmul_adaptive_avg_pool2d(x, output_size)

    F.adaptive_avg_pool2d = pool
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = original


class LogitsAtInputSize(nn.Module):
    """``images (B, 3, H, W)`` → decode logits ``(B, K, H, W)``: whole-image inference of a
    :class:`~dynaseg.models.segmentor.Segmentor`, the graph that is exported (always resized, so
    no size comparison is traced)."""

    def __init__(self, net: nn.Module, align_corners: bool = False) -> None:
        super().__init__()
        self.net = net
        self.align_corners = align_corners

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net.decode_logits(images)
        size = (images.shape[-2], images.shape[-1])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)


def export_onnx(
    net: nn.Module,
    path: Path,
    sample: torch.Tensor,
    align_corners: bool = False,
    dynamic: bool = True,
) -> Path:
    """Export whole-image inference of ``net`` to ONNX (torch's ``torch.export``-based exporter).

    ``dynamic``: batch, height and width are dynamic axes (``batch``, ``height``, ``width``);
    otherwise the graph is fixed to ``sample``'s shape. Input ``images`` (ImageNet-normalised
    float32), output ``logits``.
    """
    model = LogitsAtInputSize(net, align_corners).eval()
    dims = torch.export.Dim.DYNAMIC
    shapes = {"images": {0: dims, 2: dims, 3: dims}} if dynamic else None
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), exportable_ops():
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamo=True,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=shapes,
            optimize=False,
            verbose=False,
        )
    return path


def onnx_max_abs_diff(
    path: Path, net: nn.Module, images: torch.Tensor, align_corners: bool = False
) -> float:
    """Max absolute difference between ONNX Runtime (CPU) and PyTorch logits on ``images``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: constant-folding notices are not actionable
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"images": images.numpy()})
    with torch.no_grad():
        reference = LogitsAtInputSize(net, align_corners).eval()(images)
    if tuple(onnx_logits.shape) != tuple(reference.shape):
        raise RuntimeError(
            f"ONNX output {tuple(onnx_logits.shape)} != PyTorch {tuple(reference.shape)}"
        )
    return float((torch.from_numpy(onnx_logits) - reference).abs().max())
