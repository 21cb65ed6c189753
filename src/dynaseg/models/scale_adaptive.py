"""The scale-adaptive convolution and SAC-multiple's backbone patching.

Paper: Zhang, Tang, Zhang, Li, Yan, "Scale-adaptive Convolutions for Scene Parsing", ICCV 2017
(https://openaccess.thecvf.com/content_iccv_2017/html/Zhang_Scale-Adaptive_Convolutions_for_ICCV_2017_paper.html).
The SAC-single decode head that uses these layers is :class:`dynaseg.models.heads.sac.SACHead`;
paper-vs-ours choices are listed in docs/fidelity.md.

- §3.2 scale learning: a 3×3 *scale regression* conv predicts one scale coefficient ``s^t`` per
  output position, initialised by Eq. (1): weights ``ε ~ N(0, σ²)``, ``σ ≪ 1`` and bias 1, so the
  SAC starts as the standard convolution. §3.4: scales are clipped to ``[min_scale, max_scale]``
  (the paper does not give the bounds; ours default to ``[0.25, 4]``, arguments).
- §3.3 adaptive convolution, Eqs. (7)–(9): the ``(2k+1)²`` taps of a (dilation ``d``) kernel
  are taken at ``(p^t + i·d·s^t, q^t + j·d·s^t)`` with bilinear sampling (Eq. 8, zero outside the
  map, as the standard conv's zero padding), then ``B^t = Σ K_ij Z^t_ij + b``. ``s ≡ 1`` is the
  standard conv; integer ``s`` is a conv with dilation ``d·s``.

Two equivalent implementations (``impl``):

- ``"grid"`` (default): ``F.grid_sample`` of every tap (align_corners=True maps pixel centres
  exactly) and one matmul with the kernel. Measured on a 2-core CPU (torch 2.14.1, B=2,
  512→512 channels, 64×64, d=4, min of 5): forward 989 ms vs 827 ms for ``"deform"``, but
  forward+backward 2.42 s vs 5.96 s (256 ch, 32×32: 190 ms vs 716 ms), so training is 2.5–3.8×
  faster; it holds a ``K²×`` copy of the input (9× for 3×3) for backward.
- ``"deform"``: ``torchvision.ops.deform_conv2d`` on the regular dilation-``d`` grid with offsets
  ``(s − 1)·d·(i, j)`` for tap ``(i, j)``; no extra memory. Both agree to ~1e-5.

*SAC-multiple* (§4.1): every 3×3 conv of the last ResNet stage is scale-adaptive, sharing one
scale map regressed from Stage 4. This changes the backbone, so it lives here, beside the
backbones: :func:`apply_sac_multiple` patches a (timm) backbone in place and
:func:`sac_multiple_backbone` is the Hydra target of ``model=sac_multiple``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from dynaseg.errors import ConfigError
from dynaseg.models.backbones import TimmBackbone

# Which backbones SAC-multiple can patch (said in its errors).
SAC_MULTIPLE_FAMILIES = (
    "SAC-multiple supports the timm ResNet family with plain 3×3 convs in layer4 (resnet*, "
    "resnet*c/d, seresnet*; e.g. model/backbone=resnet50c or resnet_tiny), not grouped "
    "ResNeXt/ResNeSt nor other families; SAC-single (model=sac) works on every backbone"
)

SACImpl = Literal["deform", "grid"]


class ScaleRegression(nn.Module):
    """The scale regression layer (§3.2): 3×3 conv → 1 channel, Eq. (1) init, clipped output.

    Args:
        in_channels: channels of the feature the scales are regressed from.
        sigma: std of the initial weights (``σ ≪ 1``).
        min_scale, max_scale: clip bounds of the scale coefficients (§3.4).
    """

    def __init__(
        self,
        in_channels: int,
        sigma: float = 1e-3,
        min_scale: float = 0.25,
        max_scale: float = 4.0,
    ) -> None:
        super().__init__()
        if not 0 <= min_scale <= 1 <= max_scale:
            raise ValueError(
                f"ScaleRegression: need 0 <= min_scale <= 1 <= max_scale, got "
                f"[{min_scale}, {max_scale}]"
            )
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.min_scale, self.max_scale = min_scale, max_scale
        nn.init.normal_(self.conv.weight, 0.0, sigma)
        nn.init.constant_(self.conv.bias, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale map ``(B, 1, H, W)`` in fp32 (fp64 for fp64 input), whatever the autocast dtype.

        The scales set sub-pixel tap positions ``i·d·s``: near ``s = 1`` bf16 resolves steps of
        2⁻⁷, i.e. ~0.1 px at dilation 12, so the one-channel regression (cheap next to the layer
        it steers) runs outside autocast.
        """
        dtype = _coordinate_dtype(x.dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            scale = F.conv2d(
                x.to(dtype), self.conv.weight.to(dtype), self.conv.bias.to(dtype), padding=1
            )
        return scale.clamp(self.min_scale, self.max_scale)


def _coordinate_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sampling positions are built in fp32 (fp64 if the input is fp64), never in fp16/bf16:
    fp16 steps are 1/8 px at coordinate 128 and 1/4 px at 256, bf16 steps are 1 px at 128."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tap_grid(kernel_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Tap indices ``(i, j)`` (row, col), centred, row-major: ``(K², 2)``."""
    r = torch.arange(kernel_size, device=device, dtype=dtype) - (kernel_size - 1) / 2
    ii, jj = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([ii.reshape(-1), jj.reshape(-1)], dim=1)


def sac_offsets(scale: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """``deform_conv2d`` offsets ``(B, 2K², H, W)`` realising Eq. (7): tap ``(i, j)`` moves from
    ``p + i·d`` to ``p + i·d·s``, i.e. by ``(s − 1)·d·(i, j)`` (``(dy, dx)`` pairs per tap)."""
    scale = scale.to(_coordinate_dtype(scale.dtype))
    taps = _tap_grid(kernel_size, scale.device, scale.dtype) * dilation  # (K², 2)
    off = (scale - 1).unsqueeze(1) * taps.reshape(1, -1, 2, 1, 1)  # (B, K², 2, H, W)
    return off.flatten(1, 2)


def sac_sampling_positions(
    scale: torch.Tensor, kernel_size: int, dilation: int = 1, stride: int = 1
) -> torch.Tensor:
    """Eq. (7) in pixel units: where each tap of each output position samples its input.

    Args:
        scale: scale coefficients ``(B, 1, H_out, W_out)``.
        kernel_size, dilation, stride: of the convolution (output ``o`` is centred at
            ``p = stride·o``).

    Returns:
        ``(B, K², H_out, W_out, 2)`` positions ``(x, y)`` = ``(col, row)`` (grid_sample's order),
        always fp32 (fp64 for fp64 scales), also under fp16/bf16 autocast.
    """
    dtype = _coordinate_dtype(scale.dtype)
    b, _, h_out, w_out = scale.shape
    taps = _tap_grid(kernel_size, scale.device, dtype) * dilation  # (K², 2) in (row, col)
    ys = torch.arange(h_out, device=scale.device, dtype=dtype) * stride
    xs = torch.arange(w_out, device=scale.device, dtype=dtype) * stride
    s = scale[:, 0].unsqueeze(1).to(dtype)  # (B, 1, Ho, Wo)
    py = ys.view(1, 1, -1, 1) + taps[:, 0].view(1, -1, 1, 1) * s  # (B, K², Ho, Wo)
    px = xs.view(1, 1, 1, -1) + taps[:, 1].view(1, -1, 1, 1) * s
    return torch.stack([px, py], dim=-1)


def scale_adaptive_conv2d(
    x: torch.Tensor,
    scale: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    dilation: int = 1,
    stride: int = 1,
    impl: SACImpl = "grid",
) -> torch.Tensor:
    """Eq. (9): the scale-adaptive convolution of ``x`` with ``weight`` (``(O, C, K, K)``, odd K).

    Args:
        x: input ``(B, C, H, W)``.
        scale: scale coefficients ``(B, 1, H_out, W_out)`` (one per output position).
        weight, bias: the convolution's parameters.
        dilation: the base dilation ``d``.
        stride: convolution stride (the output grid is ``p = stride·o``).
        impl: ``"deform"`` (``deform_conv2d``) or ``"grid"`` (``grid_sample``).
    """
    k = weight.shape[-1]
    if k % 2 != 1 or weight.shape[-2] != k:
        raise ValueError(f"scale_adaptive_conv2d: need a square odd kernel, got {weight.shape}")
    pad = dilation * (k - 1) // 2
    h_out = (x.shape[-2] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    w_out = (x.shape[-1] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    if scale.shape[-2:] != (h_out, w_out):
        scale = F.interpolate(scale, size=(h_out, w_out), mode="bilinear", align_corners=False)
    if impl == "deform":
        offsets = sac_offsets(scale, k, dilation)
        if x.dtype == offsets.dtype:
            return deform_conv2d(
                x, offsets, weight, bias, stride=stride, padding=pad, dilation=dilation
            )
        # fp16/bf16 input (autocast or a half model): torchvision's CPU kernel has no reduced-
        # precision path, and its CUDA autocast wrapper computes in fp32 — do so explicitly.
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = deform_conv2d(
                x.to(offsets.dtype),
                offsets,
                weight.to(offsets.dtype),
                None if bias is None else bias.to(offsets.dtype),
                stride=stride,
                padding=pad,
                dilation=dilation,
            )
        return out.to(x.dtype)
    if impl != "grid":
        raise ValueError(f"scale_adaptive_conv2d: unknown impl {impl!r}")
    b, c, h, w = x.shape
    pos = sac_sampling_positions(scale, k, dilation, stride)  # fp32 pixel positions
    # align_corners=True: -1 and +1 are the centres of the first and last pixels
    size = torch.tensor([max(w - 1, 1), max(h - 1, 1)], device=x.device, dtype=pos.dtype)
    grid = (2 * pos / size - 1).reshape(b, -1, w_out, 2)
    # Bilinear weights from fp32 positions; grid_sample wants input and grid of one dtype (and
    # autocast runs it in fp32 anyway). The K²× copy is handed on in the input's dtype.
    sampled = F.grid_sample(
        x.to(grid.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    sampled = sampled.to(x.dtype).reshape(b, c, k * k, h_out, w_out)
    out = torch.einsum("bckhw,ock->bohw", sampled, weight.reshape(weight.shape[0], c, k * k))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class ScaleAdaptiveConv2d(nn.Conv2d):
    """A ``Conv2d`` (same parameters, so weights copy over) whose taps follow a scale map.

    ``forward(x, scale)``; ``scale=None`` runs the standard convolution (``s ≡ 1``).
    """

    def __init__(self, *args: object, impl: SACImpl = "grid", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.groups != 1 or self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError("ScaleAdaptiveConv2d: only square, ungrouped kernels are supported")
        self.impl: SACImpl = impl

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        if scale is None:
            return super().forward(x)
        return scale_adaptive_conv2d(
            x, scale, self.weight, self.bias, self.dilation[0], self.stride[0], self.impl
        )


class _ScaleMapHolder(nn.Module):
    """Scale regression on the Stage-4 output, its latest map shared by the Stage-5 SAC convs."""

    def __init__(self, regression: ScaleRegression) -> None:
        super().__init__()
        self.regression = regression
        self.scale: torch.Tensor | None = None

    def hook(self, module: nn.Module, args: object, output: torch.Tensor) -> None:
        self.scale = self.regression(output)


class _SharedScaleConv(ScaleAdaptiveConv2d):
    """A :class:`ScaleAdaptiveConv2d` that reads the shared scale map (plain ``module(x)`` call,
    so it drops into a ResNet block). Its parameters keep the replaced conv's names
    (``layer4.0.conv2.weight``), so plain-ResNet and baseline checkpoints load unchanged."""

    def __init__(self, *args: Any, holder: _ScaleMapHolder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holder = [holder]  # a list: not registered twice as a submodule

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        scale = self._holder[0].scale if scale is None else scale
        if scale is None:
            raise RuntimeError("SAC-multiple: the Stage-4 scale map was not computed")
        return super().forward(x, scale)


def apply_sac_multiple(
    backbone: nn.Module,
    context_stage: str = "layer3",
    stage: str = "layer4",
    min_scale: float = 0.25,
    max_scale: float = 4.0,
    sigma: float = 1e-3,
    impl: SACImpl = "grid",
) -> nn.Module:
    """SAC-multiple (§4.1): make every 3×3 conv of ``stage`` scale-adaptive, in place.

    A :class:`ScaleRegression` on the output of ``context_stage`` (ResNet Stage 4, ``layer3``)
    gives one scale map shared by all 3×3 convs of ``stage`` (Stage 5, ``layer4``) — computed by a
    forward hook, so the backbone's own ``forward`` is untouched. The original conv weights are
    copied, so a pretrained backbone stays pretrained (``s ≡ 1`` at init reproduces it). The
    regression is registered as ``backbone.sac_scale`` (its parameters train with the backbone).
    Works on :class:`~dynaseg.models.backbones.TimmBackbone` (finds ``body.<stage>``) or a bare
    ResNet. SAC-single is the decode head :class:`~dynaseg.models.heads.sac.SACHead`.

    Returns:
        the same ``backbone`` object (handy as a Hydra ``_target_`` wrapping the backbone config).
    """
    root = getattr(backbone, "body", backbone)
    try:
        ctx_mod = root.get_submodule(context_stage)
        stage_mod = root.get_submodule(stage)
    except AttributeError as err:
        name = getattr(backbone, "name", type(root).__name__)
        raise ConfigError(
            f"model=sac_multiple: backbone '{name}' has no '{context_stage}'/'{stage}' stages; "
            f"{SAC_MULTIPLE_FAMILIES}"
        ) from err
    ctx_channels = next(
        m.out_channels for m in reversed(list(ctx_mod.modules())) if isinstance(m, nn.Conv2d)
    )
    if hasattr(backbone, "channels") and hasattr(backbone, "body"):
        names = [info["module"] for info in backbone.body.feature_info.get_dicts()]
        if context_stage in names:
            ctx_channels = backbone.channels[names.index(context_stage)]
    holder = _ScaleMapHolder(ScaleRegression(ctx_channels, sigma, min_scale, max_scale))
    backbone.add_module("sac_scale", holder)
    ctx_mod.register_forward_hook(holder.hook)
    targets = [
        (name, m)
        for name, m in stage_mod.named_modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1
    ]
    if not targets:
        raise ConfigError(
            f"model=sac_multiple: no ungrouped 3×3 convs in '{stage}' of backbone "
            f"'{getattr(backbone, 'name', type(root).__name__)}'; {SAC_MULTIPLE_FAMILIES}"
        )
    for name, conv in targets:
        sac = _SharedScaleConv(
            conv.in_channels,
            conv.out_channels,
            3,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
            impl=impl,
            holder=holder,
        )
        if conv.padding[0] != conv.dilation[0]:
            raise ValueError(f"apply_sac_multiple: '{name}' is not 'same'-padded")
        sac.load_state_dict(conv.state_dict())
        parent_name, _, child = name.rpartition(".")
        parent = stage_mod.get_submodule(parent_name) if parent_name else stage_mod
        setattr(parent, child, sac)
    return backbone


def sac_multiple_backbone(
    min_scale: float = 0.25,
    max_scale: float = 4.0,
    sigma: float = 1e-3,
    impl: SACImpl = "grid",
    **backbone_kwargs: Any,
) -> nn.Module:
    """A :class:`~dynaseg.models.backbones.TimmBackbone` built from ``backbone_kwargs`` with
    SAC-multiple applied (:func:`apply_sac_multiple`): the Hydra target of ``model=sac_multiple``,
    which keeps every backbone config key and only swaps the ``_target_``."""
    return apply_sac_multiple(
        TimmBackbone(**backbone_kwargs),
        min_scale=min_scale,
        max_scale=max_scale,
        sigma=sigma,
        impl=impl,
    )
