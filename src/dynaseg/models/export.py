"""Export whole-image inference of a :class:`~dynaseg.models.segmentor.Segmentor` to ONNX and
check it against PyTorch with ONNX Runtime (``scripts/export_onnx.py``).

Two ops do not export in their training-time form, and each switches to an exportable formulation
by itself while ``torch.onnx.is_in_onnx_export()`` (no global patching):

- the per-image depthwise convolution of DMNet (Eq. 1, "Dynamic Multi-scale Filters for Semantic
  Segmentation", He et al., ICCV 2019) and CaC-Net ("CaC-Net: Context-adaptive Convolution
  Network", Liu et al., ECCV 2020, arXiv:2004.08222, §3.2). ONNX's ``Conv`` takes its weight and
  ``group`` as fixed per graph, so a convolution with generated weights and ``groups = B·C``
  exports neither with a dynamic batch nor with non-constant weights;
  :func:`~dynaseg.models.ops.dynamic_depthwise_conv2d` computes it as ``k²`` shifted slices of the
  zero-padded input times one filter tap each
  (:func:`~dynaseg.models.ops.shift_add_depthwise_conv2d`: Pad, Slice, Mul and Add, every size
  taken from the input). It costs the same multiply-adds but is slower in eager PyTorch, hence
  only while exporting.
- adaptive average pooling with ``k×k`` bins (DMNet's filter generator, PSP's pyramid), which
  ONNX lacks: :func:`~dynaseg.models.ops.adaptive_avg_pool2d` computes it as two small matrix
  products (:func:`~dynaseg.models.ops.matmul_adaptive_avg_pool2d`) and global pooling as a mean.

Batch, height and width stay dynamic.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


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
    with torch.no_grad():
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
