"""SAC-single decode head.

Paper: Zhang, Tang, Zhang, Li, Yan, "Scale-adaptive Convolutions for Scene Parsing", ICCV 2017
(https://openaccess.thecvf.com/content_iccv_2017/html/Zhang_Scale-Adaptive_Convolutions_for_ICCV_2017_paper.html),
§4.1. The scale-adaptive convolution and the scale regression (§3) are models-level layers in
:mod:`dynaseg.models.scale_adaptive`, as is SAC-multiple, which patches the backbone.
Paper-vs-ours choices (clip bounds, dilation, layouts): docs/fidelity.md.

Two layouts (``layout``):

- ``"sac_classifier"`` — the paper's SAC-single: its baseline replaces ResNet's pooling and FC
  layer by "a new 3×3 convolutional layer to generate the M confidence maps" on Stage 5, and
  SAC-single makes that layer — "the convolutional layer before the softmax layer" —
  scale-adaptive. With ``num_convs=0`` (the paper) the head is exactly one 3×3 SAC conv from
  the Stage-5 features to the logits, plus the scale regression.
- ``"fcn_last_conv"`` — not in the paper: an mmseg FCN head (``num_convs`` 3×3 conv-BN-ReLU,
  dropout, 1×1 classifier) whose last 3×3 conv is the scale-adaptive one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from dynaseg.errors import check_arg
from dynaseg.models.heads.base import DecodeHead, record_internal
from dynaseg.models.layers import ConvNormAct
from dynaseg.models.scale_adaptive import SACImpl, ScaleAdaptiveConv2d, ScaleRegression

SACLayout = Literal["sac_classifier", "fcn_last_conv"]


class SACHead(DecodeHead):
    """SAC-single: the scale-adaptive 3×3 classifier of the paper, or an FCN head whose last 3×3
    conv is scale-adaptive (see the module docstring for the two layouts).

    The scale map is regressed from the head input (Stage 5) by :class:`ScaleRegression` (§4.1
    "a 3×3 convolutional layer after the 5th residual block").

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`
            (``channels`` is unused by ``"sac_classifier"`` with ``num_convs=0``).
        layout: ``"sac_classifier"`` (paper) or ``"fcn_last_conv"``.
        num_convs: ``"sac_classifier"``: standard 3×3 conv-BN-ReLU before the SAC classifier
            (≥ 0; 0 is the paper). ``"fcn_last_conv"``: convs before the 1×1 classifier (≥ 1),
            the last of them scale-adaptive.
        dilation: base dilation ``d`` of the SAC conv (the paper does not state it).
        min_scale, max_scale, sigma: see :class:`ScaleRegression`.
        impl: ``"deform"`` | ``"grid"``.
        adaptive: ``False`` builds the paper's *baseline* (Tables 1 and 3): the same layers with
            ``s ≡ 1`` — standard convs and no scale regression — so its checkpoint initialises
            the SAC-only rows (``model.init_from``) with matching parameter names.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        layout: SACLayout = "sac_classifier",
        num_convs: int = 0,
        dilation: int = 1,
        min_scale: float = 0.25,
        max_scale: float = 4.0,
        sigma: float = 1e-3,
        impl: SACImpl = "grid",
        adaptive: bool = True,
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        check_arg(
            layout in ("sac_classifier", "fcn_last_conv"),
            "layout",
            layout,
            "'sac_classifier' (the paper's SAC-single) or 'fcn_last_conv'",
        )
        sac_classifier = layout == "sac_classifier"
        least = 0 if sac_classifier else 1
        check_arg(num_convs >= least, "num_convs", num_convs, f"≥ {least} for layout {layout!r}")
        self.layout = layout
        n_plain = num_convs if sac_classifier else num_convs - 1
        self.convs = nn.Sequential(
            *[
                ConvNormAct(self.in_channels if i == 0 else channels, channels, 3)
                for i in range(n_plain)
            ]
        )
        self.adaptive = adaptive
        if adaptive:
            self.scale_regression = ScaleRegression(self.in_channels, sigma, min_scale, max_scale)
        sac_in = self.in_channels if n_plain == 0 else channels
        if sac_classifier:
            self.conv_seg = ScaleAdaptiveConv2d(
                sac_in, num_classes, 3, padding=dilation, dilation=dilation, impl=impl
            )
        else:
            self.sac_conv = ScaleAdaptiveConv2d(
                sac_in, channels, 3, padding=dilation, dilation=dilation, bias=False, impl=impl
            )
            self.sac_norm = nn.BatchNorm2d(channels)
            self.sac_act = nn.ReLU(inplace=True)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        scale = self.scale_regression(x) if self.adaptive else None  # None: standard conv
        if scale is not None:
            record_internal(self, "scale", scale)  # see heads.base.capture_internals
        out = self.convs(x)
        if self.layout == "sac_classifier":
            return self.conv_seg(self.dropout(out), scale)
        out = self.sac_act(self.sac_norm(self.sac_conv(out, scale)))
        return self.cls_seg(out)
