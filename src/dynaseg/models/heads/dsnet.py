"""DSNet head: Context Guided Dynamic Sampling (CGDS) network.

Paper: "Dynamic Sampling Network for Semantic Segmentation" (Fu, He, Zhang, Qiao; AAAI 2020,
doi:10.1609/aaai.v34i07.6709). Paper-vs-ours (recipe, ASPP, silent choices): docs/fidelity.md.

Backbone: dilated ResNet at output stride 16 (set ``backbone.output_stride: 16``). The head:

- high-level feature ``X(ASPP)``: the ASPP of DeepLabv3+ (the paper cites Chen et al. 2018b) on
  Stage 5 (:class:`~.aspp.ASPPModule`, OS-16 rates (6, 12, 18), image pooling, branches of
  ``aspp_channels`` = 256 projected by a 1×1 conv, as DeepLabv3+); ``aspp_channels=512,
  aspp_fuse_kernel_size=3`` is mmseg's ASPPHead variant. With ``use_aspp=False``, the raw Stage-5
  feature (Table 1 row 1);
- low-level feature ``X(i)`` (``low_index``; paper X(3) = timm index 2 = ``layer2``, OS 8) through
  the *modification* conv → ``X(M)``;
- sampling points: ``X(ASPP)`` is upsampled to ``X(M)``'s size and one conv predicts
  ``2·k·k`` offsets per position (the "sampling operation"; zero-initialised, so training starts
  from the regular grid);
- dynamic sampling convolution, Eq. (2) ``S(i,j) = Σ_{m,n} I(i + p_m, j + p_n) K(m, n)`` with the
  sampling points ``p`` = regular grid + offsets, bilinear sampling (``deform_conv2d``) → ``X(S)``;
- ``X(F) = [X(M), X(S), X(ASPP)]`` (concat) → classification sub-network → logits at ``X(M)``'s
  resolution.

``dynamic_sampling=False`` removes the CGDS sampling (no offsets, no ``X(S)``): ``X(F) =
[X(M), X(ASPP)]``, DeepLabv3+'s decoder on the same features, "the baseline" of the paper's text
(docs/fidelity.md: the reading of Table 2's "Baseline" row).

Table 1's low/high pairs are ``(low_index, use_aspp)``: (2, False) = X(3)/X(5),
(2, True) = X(3)/X(ASPP) (paper default), (3, True) = X(4)/X(ASPP), (4, True) = X(5)/X(ASPP).

Choices where the paper is silent (arguments): modification conv 1×1 conv-BN-ReLU to
``low_channels`` = 256; offset predictor a 3×3 conv (``offset_kernel_size``); dynamic sampling
conv ``k = 3`` to ``channels`` then BN-ReLU, one offset group; classification sub-network one 3×3
conv-BN-ReLU (``num_fuse_convs``) then dropout and the 1×1 classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import deform_conv2d

from dynaseg.errors import check_arg
from dynaseg.models.heads.aspp import ASPPModule
from dynaseg.models.heads.base import DecodeHead, record_internal
from dynaseg.models.layers import ConvNormAct, resize


class DynamicSamplingConv2d(nn.Module):
    """Eq. (2): a ``k×k`` conv whose taps sit at the regular grid plus predicted offsets.

    ``forward(x, offset)`` with ``offset`` of shape ``(B, 2·k·k, H, W)`` (``(dy, dx)`` per tap,
    row-major, as ``torchvision.ops.deform_conv2d``); zero offsets give the regular conv.

    Args:
        in_channels, out_channels: conv widths.
        kernel_size: ``k`` (odd).
        bias: add a bias.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False
    ) -> None:
        super().__init__()
        check_arg(kernel_size % 2 == 1, "kernel_size", kernel_size, "an odd kernel size")
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, padding=self.kernel_size // 2)


class DSHead(DecodeHead):
    """DSNet decode head (ASPP + CGDS module + classifier).

    Args:
        in_channels, num_classes, channels, dropout_ratio: see :class:`DecodeHead`.
        in_index: the high-level (Stage-5) feature.
        low_index: the low-level feature (paper X(3) = 2).
        use_aspp: ASPP on the high-level feature (False = raw Stage 5, Table 1 row 1).
        aspp_dilations: ASPP rates (OS 16: 6, 12, 18).
        aspp_channels: width of each ASPP branch and of ``X(ASPP)`` (DeepLabv3+: 256).
        aspp_fuse_kernel_size: kernel of the ASPP projection (DeepLabv3+: 1; mmseg: 3).
        low_channels: width of the modified low-level feature ``X(M)``.
        sample_kernel_size: ``k`` of the dynamic sampling conv.
        offset_kernel_size: kernel of the offset-predicting conv.
        num_fuse_convs: 3×3 conv-BN-ReLU layers of the classification sub-network.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        low_index: int = 2,
        channels: int = 512,
        use_aspp: bool = True,
        aspp_dilations: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
        aspp_fuse_kernel_size: int = 1,
        low_channels: int = 256,
        sample_kernel_size: int = 3,
        offset_kernel_size: int = 3,
        num_fuse_convs: int = 1,
        dropout_ratio: float = 0.1,
        dynamic_sampling: bool = True,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        self.low_index = self.feature_index("low_index", low_index)
        self.aspp = (
            ASPPModule(
                self.in_channels,
                aspp_channels,
                aspp_dilations,
                fuse_kernel_size=aspp_fuse_kernel_size,
            )
            if use_aspp
            else None
        )
        high_channels = aspp_channels if use_aspp else self.in_channels
        self.modify_conv = ConvNormAct(self.in_channels_all[low_index], low_channels, 1)
        self.dynamic_sampling = dynamic_sampling
        if dynamic_sampling:
            k = sample_kernel_size
            self.offset_conv = nn.Conv2d(
                high_channels, 2 * k * k, offset_kernel_size, padding=offset_kernel_size // 2
            )
            nn.init.zeros_(self.offset_conv.weight)
            nn.init.zeros_(self.offset_conv.bias)
            self.sample_conv = DynamicSamplingConv2d(low_channels, channels, k)
            self.sample_norm = nn.BatchNorm2d(channels)
            self.sample_act = nn.ReLU(inplace=True)
        fused = low_channels + (channels if dynamic_sampling else 0) + high_channels
        self.fuse = nn.Sequential(
            *[
                ConvNormAct(fused if i == 0 else channels, channels, 3)
                for i in range(num_fuse_convs)
            ]
        )
        check_arg(
            num_fuse_convs > 0 or fused == channels,
            "num_fuse_convs",
            num_fuse_convs,
            f"≥ 1 unless the concatenated width {fused} equals channels={channels}",
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        high = features[self.in_index]
        if self.aspp is not None:
            high = self.aspp(high)
        x_m = self.modify_conv(features[self.low_index])
        high = resize(high, x_m.shape[-2:])
        if not self.dynamic_sampling:  # the network without CGDS: X(F) = [X(M), X(ASPP)]
            return self.cls_seg(self.fuse(torch.cat([x_m, high], dim=1)))
        offset = self.offset_conv(high)
        record_internal(self, "offsets", offset)  # see heads.base.capture_internals
        x_s = self.sample_act(self.sample_norm(self.sample_conv(x_m, offset)))
        return self.cls_seg(self.fuse(torch.cat([x_m, x_s, high], dim=1)))
