"""SAC-single decode head.

Paper: Zhang, Tang, Zhang, Li, Yan, "Scale-adaptive Convolutions for Scene Parsing", ICCV 2017
(https://openaccess.thecvf.com/content_iccv_2017/html/Zhang_Scale-Adaptive_Convolutions_for_ICCV_2017_paper.html),
§4.1. The scale-adaptive convolution and the scale regression (§3) are models-level layers in
:mod:`dynaseg.models.scale_adaptive`, as is SAC-multiple, which patches the backbone.
Paper-vs-ours choices: docs/fidelity.md.

*SAC-single* — :class:`SACHead`: an FCN head whose last 3×3 conv before the classifier is
scale-adaptive, its scale map regressed from the head input (Stage 5); ``sac_classifier=True``
instead makes the classifier itself a 3×3 SAC conv, the paper's literal setting (its baseline
classifies with a 3×3 conv).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.layers import ConvNormAct
from dynaseg.models.scale_adaptive import SACImpl, ScaleAdaptiveConv2d, ScaleRegression


class SACHead(DecodeHead):
    """SAC-single: FCN head whose last 3×3 conv (or the classifier) is scale-adaptive.

    Layout: ``num_convs − 1`` standard 3×3 conv-BN-ReLU, then one scale-adaptive 3×3 conv-BN-ReLU
    (dilation ``dilation``), dropout, 1×1 classifier. The scale map is regressed from the head
    input by :class:`ScaleRegression` (§4.1 "a 3×3 conv after the 5th residual block").

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`.
        num_convs: convs before the classifier (≥ 1; the last is the SAC one unless
            ``sac_classifier``).
        dilation: base dilation ``d`` of the SAC conv.
        min_scale, max_scale, sigma: see :class:`ScaleRegression`.
        sac_classifier: the paper's literal SAC-single — the classifier is a 3×3 SAC conv and
            the convs before it are standard.
        impl: ``"deform"`` | ``"grid"``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        num_convs: int = 1,
        dilation: int = 1,
        min_scale: float = 0.25,
        max_scale: float = 4.0,
        sigma: float = 1e-3,
        sac_classifier: bool = False,
        impl: SACImpl = "grid",
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        if num_convs < 1:
            raise ValueError(f"SACHead: num_convs must be >= 1, got {num_convs}")
        self.sac_classifier = sac_classifier
        n_plain = num_convs if sac_classifier else num_convs - 1
        self.convs = nn.Sequential(
            *[
                ConvNormAct(self.in_channels if i == 0 else channels, channels, 3)
                for i in range(n_plain)
            ]
        )
        self.scale_regression = ScaleRegression(self.in_channels, sigma, min_scale, max_scale)
        if sac_classifier:
            self.conv_seg = ScaleAdaptiveConv2d(
                channels, num_classes, 3, padding=dilation, dilation=dilation, impl=impl
            )
        else:
            sac_in = self.in_channels if n_plain == 0 else channels
            self.sac_conv = ScaleAdaptiveConv2d(
                sac_in, channels, 3, padding=dilation, dilation=dilation, bias=False, impl=impl
            )
            self.sac_norm = nn.BatchNorm2d(channels)
            self.sac_act = nn.ReLU(inplace=True)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        scale = self.scale_regression(x)
        out = self.convs(x)
        if self.sac_classifier:
            return self.conv_seg(self.dropout(out), scale)
        out = self.sac_act(self.sac_norm(self.sac_conv(out, scale)))
        return self.cls_seg(out)
