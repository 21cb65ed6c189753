"""FCN head (Long et al., CVPR 2015) as mmsegmentation configures it.

Also DMNet's Table 5 baseline ("FCN = DMNet without DCMs") and the auxiliary deep-supervision head
(PSPNet's "DS", DMNet Table 6): an FCN head on ``layer3`` with 256 channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.layers import ConvNormAct


class FCNHead(DecodeHead):
    """``num_convs`` × 3×3 conv-BN-ReLU, optional concat with the input + 3×3 fuse, classifier.

    Args:
        in_channels, in_index, channels, num_classes, dropout_ratio: see :class:`DecodeHead`.
        num_convs: number of conv-BN-ReLU layers (mmseg: 2 for the decode head, 1 for aux).
        kernel_size: their kernel size.
        dilation: their dilation.
        concat_input: concatenate the input feature with the conv output and fuse with a 3×3
            conv-BN-ReLU before the classifier (mmseg FCN decode head: True; aux: False).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        num_convs: int = 2,
        kernel_size: int = 3,
        dilation: int = 1,
        concat_input: bool = True,
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        if num_convs < 1:
            raise ValueError(f"FCNHead: num_convs must be >= 1, got {num_convs}")
        self.convs = nn.Sequential(
            *[
                ConvNormAct(
                    self.in_channels if i == 0 else channels,
                    channels,
                    kernel_size,
                    dilation=dilation,
                )
                for i in range(num_convs)
            ]
        )
        self.concat_input = concat_input
        if concat_input:
            self.conv_cat = ConvNormAct(self.in_channels + channels, channels, kernel_size)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        out = self.convs(x)
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.cls_seg(out)
