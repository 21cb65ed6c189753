"""The scale-adaptive convolution (SAC, ICCV 2017 §3) and SAC-multiple's backbone patching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynaseg.models.scale_adaptive import (
    ScaleAdaptiveConv2d,
    ScaleRegression,
    apply_sac_multiple,
    sac_offsets,
    sac_sampling_positions,
    scale_adaptive_conv2d,
)
from helpers import record_grid_sample


@pytest.mark.parametrize("impl", ["grid", "deform"])
def test_sac_integer_scales_are_dilated_convs(impl: str) -> None:
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 4, 13, 11), torch.randn(5, 4, 3, 3), torch.randn(5)
    ones = torch.ones(2, 1, 13, 11)
    for d in (1, 2):
        plain = F.conv2d(x, w, b, padding=d, dilation=d)
        torch.testing.assert_close(
            scale_adaptive_conv2d(x, ones, w, b, dilation=d, impl=impl),
            plain,
            atol=1e-5,
            rtol=1e-4,
        )
        twice = F.conv2d(x, w, b, padding=2 * d, dilation=2 * d)
        torch.testing.assert_close(
            scale_adaptive_conv2d(x, 2 * ones, w, b, dilation=d, impl=impl),
            twice,
            atol=1e-5,
            rtol=1e-4,
        )


def test_sac_impls_agree_and_noninteger_scale_has_gradient() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 10, 12, requires_grad=True)
    w = torch.randn(4, 3, 3, 3)
    s = (1.0 + torch.rand(1, 1, 10, 12) * 0.8 + 0.1).requires_grad_(True)  # in (1.1, 1.9)
    a = scale_adaptive_conv2d(x, s, w, dilation=2, impl="grid")
    b = scale_adaptive_conv2d(x, s, w, dilation=2, impl="deform")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    (a * torch.randn_like(a)).sum().backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    # Eq. (7): offsets of tap (i, j) are (s − 1)·d·(i, j) as (dy, dx)
    off = sac_offsets(torch.full((1, 1, 1, 1), 1.5), 3, dilation=2).view(9, 2)
    assert off[0].tolist() == [-1.0, -1.0] and off[5].tolist() == [0.0, 1.0]


def test_scale_regression_init_and_clip() -> None:
    regression = ScaleRegression(16, min_scale=0.25, max_scale=4.0)
    s = regression(torch.randn(2, 16, 6, 6))
    assert torch.allclose(s, torch.ones_like(s), atol=0.05)  # Eq. (1): starts at s ≈ 1
    with torch.no_grad():
        regression.conv.bias.fill_(10.0)
    assert regression(torch.zeros(1, 16, 4, 4)).max() == 4.0


def test_sac_conv_module_scale_none_is_plain_conv() -> None:
    conv = ScaleAdaptiveConv2d(3, 4, 3, padding=2, dilation=2)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(conv(x, torch.ones(1, 1, 8, 8)), conv(x), atol=1e-5, rtol=1e-4)


def test_sac_multiple_patches_stage5_and_starts_as_identity() -> None:
    from dynaseg.models.backbones import TimmBackbone

    torch.manual_seed(0)
    bb = TimmBackbone("resnet18", channels=[8, 8, 16, 16], stem_width=8).eval()
    for m in bb.body.layer4.modules():  # timm zero-inits each block's last BN: undo it
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    x = torch.randn(1, 3, 64, 64)  # layer4 8×8 at OS8, dilation 4
    with torch.no_grad():
        before = bb(x)
    apply_sac_multiple(bb)
    n_sac = sum(isinstance(m, ScaleAdaptiveConv2d) for m in bb.body.layer4.modules())
    assert n_sac == 4  # resnet18 layer4: 2 blocks × 2 3×3 convs
    with torch.no_grad():
        bb.sac_scale.regression.conv.weight.zero_()
        after = bb(x)
        torch.testing.assert_close(after[4], before[4], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(after[3], before[3])
        bb.sac_scale.regression.conv.bias.fill_(0.5)
        assert not torch.allclose(bb(x)[4], before[4], atol=1e-3)
    assert any(n.startswith("sac_scale.") for n, _ in bb.named_parameters())


# ---------------------------------------------------------------- mixed precision


def _regression_with_varied_scales(channels: int) -> ScaleRegression:
    torch.manual_seed(0)
    regression = ScaleRegression(channels, sigma=0.05)
    with torch.no_grad():
        regression.conv.bias.fill_(1.3)  # scales spread around 1.3: fractional tap positions
    return regression


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sampling_positions_under_autocast_equal_fp32(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scale map and the grid_sample positions are fp32 under CPU autocast (bf16 and fp16
    both run on CPU with torch 2.14: conv2d, grid_sample and einsum have CPU kernels)."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 72, 80)
    regression = _regression_with_varied_scales(8)
    conv = ScaleAdaptiveConv2d(8, 5, 3, padding=4, dilation=4)
    grids = record_grid_sample(monkeypatch)
    with torch.no_grad():
        scale_ref = regression(x)
        out_ref = conv(x, scale_ref)
        with torch.autocast("cpu", dtype=dtype):
            scale_amp = regression(x)
            # the previous layer's output arrives in the autocast dtype
            out_amp = conv(x.to(dtype), scale_amp)
    assert scale_amp.dtype == torch.float32
    assert torch.equal(scale_amp, scale_ref)
    grid_ref, grid_amp = grids
    assert grid_ref.dtype == grid_amp.dtype == torch.float32
    assert torch.equal(grid_amp, grid_ref)
    # the map is large enough that positions in the autocast dtype would be off
    pos = sac_sampling_positions(scale_ref, 3, dilation=4)
    assert (pos.to(dtype).float() - pos).abs().max() > 1e-2
    # and the output differs from fp32 only by the reduced-precision matmul
    torch.testing.assert_close(out_amp.float(), out_ref, atol=0.3, rtol=0.05)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sac_positions_equal_fp32_with_a_half_model_and_deform_impl(dtype: torch.dtype) -> None:
    """Without autocast (a model cast to half) positions are still fp32; the deform impl, whose
    CPU kernel has no fp16/bf16 path, computes in fp32 and returns the input's dtype."""
    torch.manual_seed(0)
    x, w = torch.randn(1, 4, 40, 44), torch.randn(3, 4, 3, 3)
    s = 1.0 + 0.5 * torch.rand(1, 1, 40, 44)
    pos = sac_sampling_positions(s.to(dtype), 3, dilation=2)
    assert pos.dtype == torch.float32
    torch.testing.assert_close(pos, sac_sampling_positions(s.to(dtype).float(), 3, dilation=2))
    ref = scale_adaptive_conv2d(x, s, w, dilation=2, impl="deform")
    for impl in ("grid", "deform"):
        out = scale_adaptive_conv2d(x.to(dtype), s, w.to(dtype), dilation=2, impl=impl)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref, atol=0.2, rtol=0.05)


def test_sac_multiple_keeps_the_resnet_parameter_names() -> None:
    """A plain-ResNet (or SAC baseline) checkpoint loads into the patched backbone unchanged:
    the only new entries are the Stage-4 scale regression's."""
    from dynaseg.models.backbones import TimmBackbone

    plain = TimmBackbone("resnet18", channels=[8, 8, 16, 16], stem_width=8)
    patched = apply_sac_multiple(TimmBackbone("resnet18", channels=[8, 8, 16, 16], stem_width=8))
    extra = set(patched.state_dict()) - set(plain.state_dict())
    assert extra == {"sac_scale.regression.conv.weight", "sac_scale.regression.conv.bias"}
    assert set(plain.state_dict()) <= set(patched.state_dict())
    patched.load_state_dict(plain.state_dict(), strict=False)
    assert torch.equal(patched.body.layer4[0].conv2.weight, plain.body.layer4[0].conv2.weight)
