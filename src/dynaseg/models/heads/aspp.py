"""ASPP head (Chen et al., "Rethinking Atrous Convolution", arXiv:1706.05587), as mmseg builds it.

Atrous Spatial Pyramid Pooling as DMNet/CaC-Net/DSNet compare against it (DMNet §1, Fig. 1(b)):
parallel branches on the backbone feature — one 1×1 conv, one 3×3 conv per atrous rate and an
image-level pooling branch (global average pool → 1×1 conv → bilinear upsample) — each
conv-BN-ReLU to ``channels``; concatenated and fused by a 3×3 conv-BN-ReLU (mmsegmentation's
``ASPPHead`` ``bottleneck``) before the classifier.

Rates: DeepLabV3 uses (6, 12, 18) at output stride 16 and doubles them at OS 8; mmsegmentation's
OS-8 configs use (12, 24, 36), our default. DSNet (OS 16) uses (6, 12, 18) through
:class:`ASPPModule`. DMNet's own "ASPP" of Tables 2–3 (four dilated 3×3 branches *inside the DMNet
head structure*, no pooling branch) is ``DMHead(dilations=..., filter_type="regular")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.layers import ConvNormAct, resize
from dynaseg.models.ops import AdaptiveAvgPool2d


class ASPPModule(nn.Module):
    """ASPP features (before the classifier): ``[pool, 1×1, 3×3@r…] → concat → fuse``.

    Args:
        in_channels: input feature channels.
        channels: width of each branch and of the output.
        dilations: atrous rates of the 3×3 branches.
        image_pool: add the image-level (global average pooling) branch.
        fuse_kernel_size: kernel of the fusion conv (mmseg ASPPHead: 3; DeepLabV3 paper: 1).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        dilations: Sequence[int] = (12, 24, 36),
        image_pool: bool = True,
        fuse_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.dilations = tuple(int(d) for d in dilations)
        self.image_pool = (
            nn.Sequential(AdaptiveAvgPool2d(1), ConvNormAct(in_channels, channels, 1))
            if image_pool
            else None
        )
        self.branches = nn.ModuleList(
            [ConvNormAct(in_channels, channels, 1)]
            + [ConvNormAct(in_channels, channels, 3, dilation=d) for d in self.dilations]
        )
        n = len(self.branches) + int(image_pool)
        self.bottleneck = ConvNormAct(n * channels, channels, fuse_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.image_pool is not None:
            outs.insert(0, resize(self.image_pool(x), x.shape[-2:]))
        return self.bottleneck(torch.cat(outs, dim=1))


class ASPPHead(DecodeHead):
    """ASPP head: :class:`ASPPModule` then the classifier.

    The defaults are mmsegmentation's ``ASPPHead`` (512 channels, 3×3 fusion), not the DeepLabV3
    paper's head (256 channels, 1×1 fusion: ``channels=256, fuse_kernel_size=1``).

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`.
        dilations: atrous rates of the 3×3 branches (default: OS-8 rates 12, 24, 36).
        image_pool: keep the image-level pooling branch.
        fuse_kernel_size: kernel of the fusion conv (mmseg: 3; DeepLabV3 paper: 1).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        dilations: Sequence[int] = (12, 24, 36),
        image_pool: bool = True,
        dropout_ratio: float = 0.1,
        fuse_kernel_size: int = 3,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        self.aspp = ASPPModule(
            self.in_channels, channels, dilations, image_pool, fuse_kernel_size=fuse_kernel_size
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.aspp(features[self.in_index]))


__all__ = ["ASPPHead", "ASPPModule"]
