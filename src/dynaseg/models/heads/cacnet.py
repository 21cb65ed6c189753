"""CaC-Net head: Context-adaptive Convolution (Liu, He, Qiao, Ren, Li; ECCV 2020).

Paper: "Learning to Predict Context-adaptive Convolution for Semantic Segmentation",
arXiv:2004.08222, §3; paper-vs-ours table: docs/fidelity.md. One CaC module, on a feature
``X ∈ R^{h×w×c}``:

- §3.1 kernel prediction: query ``Q = T_q(X) ∈ R^{h×w×s²}`` and key ``K = T_k(X) ∈ R^{h×w×c}``
  by two 1×1 convs (no bias: the paper counts ``c² + s²c`` parameters); reshaped to
  ``Q̄ ∈ R^{n×s²}``, ``K̄ ∈ R^{n×c}`` (``n = hw``), Eq. (1) ``D̄ = Q̄ᵀ K̄ ∈ R^{s²×c}`` sums over
  *all* positions (global context); ``D̄`` is reshaped to ``s×s×c`` and batch-normalised → ``D``.
- §3.2 weight generation: depthwise conv of ``X`` with ``D`` at each dilation (paper {1, 2, 3},
  the same ``D`` shared), sigmoid of each, Eq. (2) ``W = W₁ ⊕ W₂ ⊕ W₃``; ``X* = X ⊙ W``.
- §3.3 global pooling branch (the input averaged over all positions and replicated) concatenated
  with the ``X*`` of ``H`` parallel CaC modules (multi-head ensemble, paper ``H = 2``).

Table 6's alternatives to the CaC kernel (``weighting``; everything else unchanged):

- ``"fixed"``: input-invariant learned depthwise ``s×s`` kernels, used at the same dilations;
- ``"gap"``: the kernel predicted from the globally average-pooled ``X`` by one FC layer
  ``c → s²c`` (``s²c²`` weights, as §4.2 counts), then the same BN as ``D``;
- ``"se"``: SE-Head (Hu et al., Squeeze-and-Excitation Networks) in place of the CaC module:
  ``X* = X ⊙ σ(FC(ReLU(FC(GAP(X)))))``, reduction ``se_reduction`` (16, SENet's; the paper does
  not give it) — a globally shared channel re-weighting.
- Not covered: "FC" (a depth-wise FC over the ``h×w`` positions, ``h·w·s²·c`` weights, ties the
  parameters to one input size, so whole-image evaluation at other sizes is undefined) and
  "EncHead" (EncNet's context-encoding layer with codewords and its SE-loss: a separate head).

Choices where the paper is silent (all constructor arguments):

- Normalisation of ``Q̄``/``K̄``: the paper applies none before Eq. (1), only BN on ``D``. But
  ``D̄`` is a *sum* over the ``n = hw`` positions, so it grows with the image size: in training
  (fixed crops, batch statistics) BN hides that, in evaluation (running statistics, whole images
  of another size) it does not — the kernel would change with the test resolution. The default
  ``query_norm="mean"`` divides by ``n`` (a no-op for BN at a fixed size, size-independent
  otherwise); ``"none"`` is the literal Eq. (1); ``"softmax"`` makes each query column a spatial
  distribution. Eq. (1) is computed in float32 even under mixed precision (a sum over ``n``),
  in float64 for a float64 module.
- BN on ``D``: ``BatchNorm2d(c)`` over ``(B, c, s, s)``, i.e. statistics per channel over the
  batch and the ``s×s`` taps (a per-element BN over the batch alone would be degenerate at
  batch 1).
- ``X`` of each head: its own 1×1 conv-BN-ReLU ``in_channels → channels`` of the backbone
  feature (§3.3: "different head modules operate on different subspaces"); otherwise ``c`` would
  be 2048 and ``T_k`` alone 4.2M parameters per head, far above Table 7's +5M.
- Global pooling branch: a plain average (no conv) of the head input, as §3.3 describes.
- Fusion before the classifier: a ``fuse_kernel_size`` conv-BN-ReLU (default 1×1, which puts the
  head near Table 7's +5M parameters; 3 gives the mmseg-style 3×3 bottleneck).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from dynaseg.errors import check_arg
from dynaseg.models.heads.base import DecodeHead, record_internal
from dynaseg.models.layers import ConvNormAct
from dynaseg.models.ops import DynamicConvImpl, adaptive_avg_pool2d, dynamic_depthwise_conv2d

QueryNorm = Literal["none", "softmax", "mean"]
Weighting = Literal["cac", "fixed", "gap", "se"]
WEIGHTINGS: tuple[str, ...] = ("cac", "fixed", "gap", "se")
QUERY_NORMS: tuple[str, ...] = ("none", "softmax", "mean")


class CaCModule(nn.Module):
    """One context-adaptive convolution module (§3.1–3.2), returning ``X* = X ⊙ W``.

    Args:
        in_channels: channels of the incoming feature.
        channels: ``c``, width of ``X`` (after the 1×1 reduction) and of ``K``.
        kernel_size: ``s``, spatial size of the predicted kernel ``D``.
        dilations: dilations of the depthwise convs sharing ``D`` (paper ``(1, 2, 3)``).
        reduce: apply the 1×1 conv-BN-ReLU ``in_channels → channels`` first (otherwise
            ``in_channels`` must equal ``channels``).
        query_norm: normalisation of ``Q̄`` before Eq. (1): ``"none"`` | ``"softmax"`` | ``"mean"``.
        weighting: how the weighting map is made — ``"cac"`` (the paper) or Table 6's
            ``"fixed"`` | ``"gap"`` | ``"se"`` (see the module docstring).
        se_reduction: channel reduction of the ``"se"`` weighting.
        dynamic_conv: ``"fast"`` | ``"grouped"`` implementation of the depthwise conv with ``D``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 3),
        reduce: bool = True,
        query_norm: QueryNorm = "mean",
        weighting: Weighting = "cac",
        se_reduction: int = 16,
        dynamic_conv: DynamicConvImpl = "fast",
    ) -> None:
        super().__init__()
        check_arg(
            weighting in WEIGHTINGS,
            "weighting",
            weighting,
            f"one of {WEIGHTINGS} (CaC-Net Table 6)",
        )
        check_arg(
            reduce or in_channels == channels,
            "reduce",
            reduce,
            f"True unless in_channels == channels ({in_channels} vs {channels})",
        )
        check_arg(query_norm in QUERY_NORMS, "query_norm", query_norm, f"one of {QUERY_NORMS}")
        check_arg(len(dilations) > 0, "dilations", list(dilations), "at least one dilation")
        self.kernel_size = kernel_size
        self.dilations = tuple(int(d) for d in dilations)
        self.query_norm = query_norm
        self.weighting = weighting
        self.dynamic_conv = dynamic_conv
        self.reduce = ConvNormAct(in_channels, channels, 1) if reduce else nn.Identity()
        s2 = kernel_size * kernel_size
        if weighting == "cac":
            self.query_conv = nn.Conv2d(channels, s2, 1, bias=False)  # T_q
            self.key_conv = nn.Conv2d(channels, channels, 1, bias=False)  # T_k
        elif weighting == "fixed":  # Table 6 "Fixed": learned, input-invariant depthwise kernels
            self.fixed_kernel = nn.Conv2d(
                channels, channels, kernel_size, groups=channels, bias=False
            )
        elif weighting == "gap":  # Table 6 "GAP": kernels from the pooled feature, s²c² weights
            self.kernel_fc = nn.Linear(channels, s2 * channels)
        else:  # Table 6 "SEHead"
            hidden = max(1, channels // se_reduction)
            self.se = nn.Sequential(
                nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
            )
        if weighting in ("cac", "gap"):
            self.kernel_norm = nn.BatchNorm2d(channels)

    def raw_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (1) before BN: ``D̄ = Q̄ᵀ K̄`` reshaped to ``(B, c, s, s)``; ``x`` is ``X``."""
        b, c = x.shape[:2]
        q = self.query_conv(x).flatten(2)  # (B, s², n)  = Q̄ᵀ
        k = self.key_conv(x).flatten(2)  # (B, c, n)   = K̄ᵀ
        if self.query_norm == "softmax":
            q = q.softmax(dim=-1)
        elif self.query_norm == "mean":
            q = q / q.shape[-1]
        # at least float32 (a sum over n; fp16/bf16 under autocast), float64 stays float64
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):
            d = torch.bmm(q.to(dtype), k.transpose(1, 2).to(dtype))  # (B, s², c) = Q̄ᵀ K̄
        return d.transpose(1, 2).reshape(b, c, self.kernel_size, self.kernel_size)

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        """The per-image depthwise kernel ``(B, c, s, s)`` of the ``cac``/``fixed``/``gap``
        weightings."""
        b, c = x.shape[:2]
        if self.weighting == "cac":
            return self.kernel_norm(self.raw_kernel(x))
        if self.weighting == "fixed":
            return self.fixed_kernel.weight.squeeze(1).expand(b, -1, -1, -1)
        pooled = adaptive_avg_pool2d(x, 1).flatten(1)  # "gap"
        raw = self.kernel_fc(pooled).view(b, c, self.kernel_size, self.kernel_size)
        return self.kernel_norm(raw)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (2): ``W = Σ_d σ(X ⊛_d D)`` for the (BN-normalised) kernel ``D`` (``"se"``: the
        channel weights ``σ(FC(ReLU(FC(GAP(X)))))``, broadcast over the positions)."""
        if self.weighting == "se":
            pooled = adaptive_avg_pool2d(x, 1).flatten(1)
            weights = torch.sigmoid(self.se(pooled))[:, :, None, None]
            record_internal(self, "weights", weights)  # see heads.base.capture_internals
            return weights
        kernel = self.kernel(x)
        record_internal(self, "kernel", kernel)
        weights = sum(
            torch.sigmoid(dynamic_depthwise_conv2d(x, kernel, d, self.dynamic_conv))
            for d in self.dilations
        )
        record_internal(self, "weights", weights)
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return x * self.weights(x)


class CaCHead(DecodeHead):
    """CaC-Net head: ``H`` parallel CaC modules + global pooling, concat, fuse, classify.

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`.
        num_heads: ``H`` (paper 2; Table 3 ablates 1–4). ``0`` with ``global_pool=False`` is
            Table 1's FCN baseline ("removing the proposed CaC modules and the global pooling
            branch", §4.2): the input goes straight to the fusion conv and the classifier.
        kernel_sizes: ``s`` per head, an int for all heads or a list of ``H`` (Table 4: 3+3, 3+5,
            3+7).
        dilations: dilation set of the weight generation (Table 5: {1}, {1,2}, {1,2,3}, ...).
        global_pool: add the global pooling branch (Table 1 "GP").
        query_norm: see :class:`CaCModule`.
        weighting: Table 6 — ``"cac"`` (the paper) | ``"fixed"`` | ``"gap"`` | ``"se"``, see
            :class:`CaCModule`.
        fuse_kernel_size: kernel of the conv-BN-ReLU fusing the concatenation.
        dynamic_conv: see :class:`CaCModule`.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        num_heads: int = 2,
        kernel_sizes: int | Sequence[int] = 3,
        dilations: Sequence[int] = (1, 2, 3),
        global_pool: bool = True,
        query_norm: QueryNorm = "mean",
        weighting: Weighting = "cac",
        fuse_kernel_size: int = 1,
        dropout_ratio: float = 0.1,
        dynamic_conv: DynamicConvImpl = "fast",
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        if isinstance(kernel_sizes, int):
            kernel_sizes = [kernel_sizes] * num_heads
        kernel_sizes = [int(k) for k in kernel_sizes]
        check_arg(num_heads >= 0, "num_heads", num_heads, "an integer ≥ 0 (0: Table 1's FCN)")
        check_arg(
            len(kernel_sizes) == num_heads,
            "kernel_sizes",
            kernel_sizes,
            f"one kernel size per head (num_heads={num_heads})",
        )
        check_arg(
            num_heads > 0 or not global_pool,
            "global_pool",
            global_pool,
            "false when num_heads=0 (Table 1's FCN baseline): the global pooling branch alone "
            "would drop every spatial feature",
        )
        self.kernel_sizes = tuple(kernel_sizes)
        self.global_pool = global_pool
        self.cac_modules = nn.ModuleList(
            CaCModule(
                self.in_channels,
                channels,
                k,
                dilations,
                query_norm=query_norm,
                weighting=weighting,
                dynamic_conv=dynamic_conv,
            )
            for k in kernel_sizes
        )
        # no CaC module and no pooling branch (Table 1 "FCN"): the input itself is fused
        fused = num_heads * channels + (self.in_channels if global_pool or not num_heads else 0)
        self.bottleneck = ConvNormAct(fused, channels, fuse_kernel_size)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        outs = [m(x) for m in self.cac_modules] or [x]
        if self.global_pool:
            outs.append(adaptive_avg_pool2d(x, 1).expand(-1, -1, *x.shape[-2:]))
        return self.cls_seg(self.bottleneck(torch.cat(outs, dim=1)))
