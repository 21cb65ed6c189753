"""DMNet decode head: Dynamic Multi-scale Filters for Semantic Segmentation (He et al., ICCV 2019).

Paper: https://openaccess.thecvf.com/content_ICCV_2019/papers/He_Dynamic_Multi-Scale_Filters_for_Semantic_Segmentation_ICCV_2019_paper.pdf
§3.2 (paper-vs-ours, incl. Table 3's parameter counting: docs/fidelity.md). For each filter size
``k`` a Dynamic Convolutional Module (DCM) computes Eq. (1), ``h_k = f_k(x) ⊛ g_k(x)``:

- feature reduction ``f_k``: 1×1 conv-BN-ReLU ``c → c'`` (``channels``);
- filter generator ``g_k``: adaptive average pool of the *context* feature to ``k×k``, then a 1×1
  conv to ``c'`` — one ``k×k`` context-aware filter per channel per image;
- ``⊛``: depthwise convolution of each image's reduced feature with its own filters, then BN-ReLU;
  the paper's optional 1×1 "fusion" conv after it is ``fusion`` (off in mmsegmentation's DMHead,
  whose parameter count we reproduce).

The outputs ``O_k`` of all DCMs are concatenated with the input feature, fused by a 3×3
conv-BN-ReLU (mmseg's ``bottleneck``) and classified. Module names follow mmseg's ``DMHead`` so an
mmseg checkpoint maps onto it by prefix.

Ablation switches (one per paper table, all on the one :class:`DMHead`):

- ``filter_type`` (Table 1): ``"dynamic"`` = context-aware filters (the paper); ``"regular"`` =
  a fixed learned dense ``k×k`` conv ``c' → c'`` replacing ``g_k(x)`` ("traditional filters with
  regular convolution"); ``"depthwise"`` = a fixed learned depthwise ``k×k`` conv. Everything else
  (``f_k``, BN-ReLU, concat, bottleneck) is unchanged, so only the filters differ. With
  ``filter_type="regular"`` and sizes ``{1,3,5,7}`` this is the paper's "Inception" baseline
  (Table 3, :class:`~dynaseg.models.heads.inception.InceptionHead`).
- ``filter_sizes`` (Table 1 columns): the kernel-size set, one branch per size.
- ``dilations`` (Table 2): if given, every branch uses ``3×3`` filters and branch ``i`` has
  dilation ``dilations[i]`` (``filter_sizes`` is then ignored). With ``filter_type="regular"`` and
  ``(6, 12, 24, 36)`` this is the paper's "ASPP" of Table 3. ``"dynamic"`` with dilations is
  allowed too (dilated context-aware filters; not in the paper).
- ``context_index`` (Table 4): the backbone stage that feeds the filter generators.

Choices where the paper is silent: the fixed filters have no bias (BN follows); even fixed kernel
sizes are padded one more on the left/top exactly like the dynamic depthwise conv, so ``regular``,
``depthwise`` and ``dynamic`` sample the same taps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dynaseg.errors import check_arg
from dynaseg.models.heads.base import DecodeHead, record_internal
from dynaseg.models.layers import ConvNormAct
from dynaseg.models.ops import (
    DYNAMIC_CONV_IMPLS,
    DynamicConvImpl,
    adaptive_avg_pool2d,
    dynamic_depthwise_conv2d,
    same_padding,
)

FilterType = Literal["dynamic", "regular", "depthwise"]
FILTER_TYPES: tuple[str, ...] = ("dynamic", "regular", "depthwise")


class DynamicConvModule(nn.Module):
    """One DCM of DMNet (§3.2, Eq. 1) with context-aware filters of size ``filter_size``.

    Args:
        filter_size: ``k``, the size of the generated filters (even sizes allowed).
        in_channels: channels of the feature ``x`` that is reduced and filtered.
        channels: ``c'``, the reduced width (and the number of generated filters).
        context_channels: channels of the feature the filters are generated from
            (defaults to ``in_channels``: the paper's Stage-5 context).
        fusion: add the paper's 1×1 conv-BN-ReLU after the depthwise conv.
        filter_type: ``"dynamic"`` (Eq. 1), or the Table-1 baselines ``"regular"`` /
            ``"depthwise"`` (fixed learned ``k×k`` filters instead of ``g_k(x)``).
        dilation: dilation of the filter taps (Table 2's dilated branches).
        dynamic_conv: implementation of ``⊛`` (``"fast"`` | ``"grouped"``, same numbers; see
            :func:`~dynaseg.models.ops.dynamic_depthwise_conv2d`).
    """

    def __init__(
        self,
        filter_size: int,
        in_channels: int,
        channels: int,
        context_channels: int | None = None,
        fusion: bool = False,
        filter_type: FilterType = "dynamic",
        dilation: int = 1,
        dynamic_conv: DynamicConvImpl = "fast",
    ) -> None:
        super().__init__()
        check_arg(filter_size >= 1, "filter_size", filter_size, "a kernel size ≥ 1")
        check_arg(filter_type in FILTER_TYPES, "filter_type", filter_type, f"one of {FILTER_TYPES}")
        check_arg(dilation >= 1, "dilation", dilation, "a dilation ≥ 1")
        check_arg(
            dynamic_conv in DYNAMIC_CONV_IMPLS,
            "dynamic_conv",
            dynamic_conv,
            f"one of {DYNAMIC_CONV_IMPLS}",
        )
        self.dynamic_conv = dynamic_conv
        self.filter_size = filter_size
        self.channels = channels
        self.filter_type = filter_type
        self.dilation = dilation
        if filter_type == "dynamic":
            self.filter_gen_conv = nn.Conv2d(context_channels or in_channels, channels, 1)
        else:
            groups = channels if filter_type == "depthwise" else 1
            self.filter_conv = nn.Conv2d(
                channels, channels, filter_size, dilation=dilation, groups=groups, bias=False
            )
        self.input_redu_conv = ConvNormAct(in_channels, channels, 1)
        self.norm = nn.BatchNorm2d(channels)
        self.activate = nn.ReLU(inplace=True)
        self.fusion_conv = ConvNormAct(channels, channels, 1) if fusion else None

    def generate_filters(self, context: torch.Tensor) -> torch.Tensor:
        """``g_k``: context → per-image depthwise filters ``(B, c', k, k)`` (dynamic only)."""
        if self.filter_type != "dynamic":
            raise RuntimeError(f"DynamicConvModule({self.filter_type!r}) has no filter generator")
        filters = self.filter_gen_conv(adaptive_avg_pool2d(context, self.filter_size))
        record_internal(self, "filters", filters)  # see heads.base.capture_internals
        return filters

    def filter(self, reduced: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``h_k``: the reduced feature ``f_k(x)`` convolved with this branch's filters."""
        if self.filter_type == "dynamic":
            return dynamic_depthwise_conv2d(
                reduced,
                self.generate_filters(context),
                dilation=self.dilation,
                impl=self.dynamic_conv,
            )
        k = self.filter_size  # even k: one more on the left/top, as the dynamic filters
        return self.filter_conv(F.pad(reduced, same_padding(k, k, self.dilation)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        out = self.filter(self.input_redu_conv(x), x if context is None else context)
        out = self.activate(self.norm(out))
        if self.fusion_conv is not None:
            out = self.fusion_conv(out)
        return out


class DMHead(DecodeHead):
    """DMNet decode head: parallel DCMs of ``filter_sizes``, concat with the input, 3×3 fuse.

    Args:
        in_channels, in_index, channels, num_classes, dropout_ratio: see :class:`DecodeHead`.
        filter_sizes: one DCM per size (paper: ``(1, 3, 5, 7)``; Table 1 ablates subsets).
        context_index: backbone feature that generates the filters (Table 4); ``None`` = in_index.
        fusion: the paper's 1×1 conv after each DCM's depthwise conv (mmseg: off).
        filter_type: ``"dynamic"`` | ``"regular"`` | ``"depthwise"`` (Table 1).
        dilations: if set, one 3×3 branch per dilation (Table 2), overriding ``filter_sizes``.
        dynamic_conv: ``"fast"`` | ``"grouped"`` implementation of the dynamic depthwise conv
            (same numbers; ``"grouped"`` is the simple reference).
        split_bottleneck: in training, apply the 3×3 bottleneck to each branch with its slice of
            the weight and sum (:meth:`ConvNormAct.forward_concat`) instead of convolving the
            concatenation: same values up to rounding, without keeping the 4096-channel
            concatenation (134 MB at 2×512²) for backward; the measured peak drops ~50 MB (the
            allocator keeps some). ``False`` is the literal formulation; evaluation
            always concatenates (mmseg's numerics bit for bit).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        filter_sizes: Sequence[int] = (1, 3, 5, 7),
        context_index: int | None = None,
        fusion: bool = False,
        dropout_ratio: float = 0.1,
        filter_type: FilterType = "dynamic",
        dilations: Sequence[int] | None = None,
        dynamic_conv: DynamicConvImpl = "fast",
        split_bottleneck: bool = True,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        self.split_bottleneck = split_bottleneck
        if dilations is not None:
            self.dilations: tuple[int, ...] = tuple(int(d) for d in dilations)
            self.filter_sizes = (3,) * len(self.dilations)
        else:
            self.filter_sizes = tuple(int(k) for k in filter_sizes)
            self.dilations = (1,) * len(self.filter_sizes)
        check_arg(
            all(k >= 1 for k in self.filter_sizes),
            "filter_sizes",
            list(filter_sizes),
            "kernel sizes ≥ 1",
        )
        check_arg(all(d >= 1 for d in self.dilations), "dilations", dilations, "dilations ≥ 1")
        # No branch at all is DMNet Table 5's "FCN": input → 3×3 bottleneck → classifier.
        self.filter_type = filter_type
        self.context_index = self.feature_index(
            "context_index", in_index if context_index is None else context_index
        )
        context_channels = self.in_channels_all[self.context_index]
        self.dcm_modules = nn.ModuleList(
            DynamicConvModule(
                k,
                self.in_channels,
                channels,
                context_channels,
                fusion,
                filter_type,
                d,
                dynamic_conv,
            )
            for k, d in zip(self.filter_sizes, self.dilations, strict=True)
        )
        self.bottleneck = ConvNormAct(
            self.in_channels + len(self.filter_sizes) * channels, channels, 3
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        context = features[self.context_index]
        outs = [x] + [self.branch(dcm, x, context) for dcm in self.dcm_modules]
        if self.split_bottleneck:
            return self.cls_seg(self.bottleneck.forward_concat(outs))
        return self.cls_seg(self.bottleneck(torch.cat(outs, dim=1)))
