"""PSPNet head: Pyramid Pooling Module (Zhao et al., CVPR 2017).

The PPM baseline of DMNet §1/§3.3: the backbone feature is average-pooled to ``s×s`` grids
(``pool_scales``, paper 1, 2, 3, 6), each reduced by a 1×1 conv-BN-ReLU, bilinearly upsampled back
(align_corners False, as mmsegmentation), concatenated with the feature itself and fused by a 3×3
conv-BN-ReLU before the classifier. The PSPNet paper reduces each level to ``c/N``; as in
mmsegmentation each level has ``channels`` (512) outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.layers import ConvNormAct, resize
from dynaseg.models.ops import AdaptiveAvgPool2d


class PSPHead(DecodeHead):
    """Pyramid pooling → concat with the input → 3×3 fuse → classifier.

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`.
        pool_scales: output grid size of each pooling level.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        self.pool_scales = tuple(int(s) for s in pool_scales)
        self.psp_modules = nn.ModuleList(
            nn.Sequential(AdaptiveAvgPool2d(s), ConvNormAct(self.in_channels, channels, 1))
            for s in self.pool_scales
        )
        self.bottleneck = ConvNormAct(
            self.in_channels + len(self.pool_scales) * channels, channels, 3
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        outs = [x] + [resize(m(x), x.shape[-2:]) for m in self.psp_modules]
        return self.cls_seg(self.bottleneck(torch.cat(outs, dim=1)))
