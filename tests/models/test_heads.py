"""Every head of issue 4: gradients, and the equalities the papers' equations imply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynaseg.models.heads import (
    ASPPHead,
    CaCHead,
    CaCModule,
    DMHead,
    DSHead,
    DynamicConvModule,
    DynamicSamplingConv2d,
    FCNHead,
    InceptionHead,
    PSPHead,
    SACHead,
)

CH = [4, 8, 8, 12, 16]


def feats(os: int = 8, size: int = 48, batch: int = 2) -> list[torch.Tensor]:
    torch.manual_seed(0)
    strides = [min(s, os) for s in (2, 4, 8, 16, 32)]
    return [torch.randn(batch, c, size // s, size // s) for c, s in zip(CH, strides, strict=True)]


HEADS = {
    "fcn": lambda: FCNHead(CH, 3, channels=6),
    "dmnet": lambda: DMHead(CH, 3, channels=6),
    "dmnet_ctx3": lambda: DMHead(CH, 3, channels=6, context_index=3, fusion=True),
    "dmnet_regular": lambda: DMHead(CH, 3, channels=6, filter_type="regular", filter_sizes=(1, 4)),
    "dmnet_dw_dilated": lambda: DMHead(
        CH, 3, channels=6, filter_type="depthwise", dilations=(1, 2)
    ),
    "inception": lambda: InceptionHead(CH, 3, channels=6),
    "aspp": lambda: ASPPHead(CH, 3, channels=6, dilations=(1, 2)),
    "psp": lambda: PSPHead(CH, 3, channels=6),
    "cacnet": lambda: CaCHead(CH, 3, channels=6, kernel_sizes=[3, 5]),
    "cacnet_softmax": lambda: CaCHead(CH, 3, channels=6, num_heads=1, query_norm="softmax"),
    "sac": lambda: SACHead(CH, 3, channels=6, dilation=2),
    "sac_cls_conv_deform": lambda: SACHead(CH, 3, channels=6, num_convs=1, impl="deform"),
    "sac_fcn_last_conv": lambda: SACHead(
        CH, 3, channels=6, layout="fcn_last_conv", num_convs=2, dilation=2
    ),
    "dsnet": lambda: DSHead(CH, 3, channels=6, low_channels=5),
    "dsnet_x5": lambda: DSHead(CH, 3, channels=6, low_channels=5, use_aspp=False),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(1)
    head = HEADS[name]()
    head.train()
    fs = feats(os=16 if name.startswith("dsnet") else 8)
    out = head(fs)
    low = fs[head.low_index] if name.startswith("dsnet") else fs[head.in_index]
    assert out.shape == (2, 3, *low.shape[-2:])
    (out * torch.randn_like(out)).sum().backward()
    dead = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"{name}: no gradient for {dead}"
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_dmhead_param_count_unchanged() -> None:
    head = DMHead(in_channels=[64, 256, 512, 1024, 2048], num_classes=150)
    assert sum(p.numel() for p in head.parameters()) == 27_351_190


def test_dmhead_ablation_param_counts() -> None:
    c = 6
    dyn = DMHead(CH, 3, channels=c, filter_sizes=(1, 3))
    reg = DMHead(CH, 3, channels=c, filter_sizes=(1, 3), filter_type="regular")
    dw = DMHead(CH, 3, channels=c, filter_sizes=(1, 3), filter_type="depthwise")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    gen = 2 * (CH[4] * c + c)  # two filter generators (1×1 conv with bias)
    assert n(reg) - n(dyn) == c * c * (1 + 9) - gen
    assert n(dw) - n(dyn) == c * (1 + 9) - gen
    dil = DMHead(CH, 3, channels=c, dilations=(2, 4, 8), filter_type="regular")
    assert [m.filter_conv.dilation for m in dil.dcm_modules] == [(2, 2), (4, 4), (8, 8)]
    assert dil.filter_sizes == (3, 3, 3)


@pytest.mark.parametrize("k", [3, 4])
def test_dynamic_filter_with_constant_generator_equals_static_depthwise(k: int) -> None:
    torch.manual_seed(0)
    dyn = DynamicConvModule(k, 8, 5, filter_type="dynamic").eval()
    static = DynamicConvModule(k, 8, 5, filter_type="depthwise").eval()
    static.load_state_dict(dyn.state_dict(), strict=False)  # same f_k and BN
    with torch.no_grad():
        dyn.filter_gen_conv.weight.zero_()  # generator ignores the context: filter = bias
        dyn.filter_gen_conv.bias.copy_(torch.randn(5))
        static.filter_conv.weight.copy_(
            dyn.filter_gen_conv.bias.view(5, 1, 1, 1).expand(5, 1, k, k)
        )
    x, ctx = torch.randn(2, 8, 9, 9), torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(dyn(x, ctx), static(x, ctx))
    # and an arbitrary constant filter bank (not constant over taps), even k included
    bank = torch.randn(5, 1, k, k)
    dyn.generate_filters = lambda context: bank.squeeze(1).expand(context.shape[0], -1, -1, -1)
    with torch.no_grad():
        static.filter_conv.weight.copy_(bank)
    torch.testing.assert_close(dyn(x, ctx), static(x, ctx))


def test_dilated_regular_branch_is_dilated_conv() -> None:
    m = DynamicConvModule(3, 4, 4, filter_type="regular", dilation=3).eval()
    x = torch.randn(1, 4, 11, 11)
    reduced = m.input_redu_conv(x)
    expect = F.conv2d(reduced, m.filter_conv.weight, padding=3, dilation=3)
    torch.testing.assert_close(m.filter(reduced, x), expect)


# ---------------------------------------------------------------- DSNet
def test_dynamic_sampling_zero_offsets_is_regular_conv() -> None:
    torch.manual_seed(0)
    conv = DynamicSamplingConv2d(4, 6, 3)
    x = torch.randn(2, 4, 9, 7)
    out = conv(x, torch.zeros(2, 18, 9, 7))
    torch.testing.assert_close(out, F.conv2d(x, conv.weight, padding=1), atol=1e-5, rtol=1e-4)
    # a whole-pixel offset on every tap equals the conv of the shifted map
    off = torch.zeros(2, 18, 9, 7)
    off[:, 1::2] = 1.0  # dx = +1
    shifted = F.pad(x[..., 1:], (0, 1))
    torch.testing.assert_close(  # column 0's left tap reads x[0] (inside), not padding
        conv(x, off)[..., 1:],
        F.conv2d(shifted, conv.weight, padding=1)[..., 1:],
        atol=1e-5,
        rtol=1e-4,
    )


def test_dshead_offsets_start_at_zero() -> None:
    head = DSHead(CH, 3, channels=6, low_channels=5, aspp_channels=7).eval()
    fs = feats(os=16)
    assert head.offset_conv(torch.randn(1, 7, 4, 4)).abs().max() == 0
    x_m = head.modify_conv(fs[2])
    x_s = head.sample_act(head.sample_norm(F.conv2d(x_m, head.sample_conv.weight, padding=1)))
    high = F.interpolate(head.aspp(fs[4]), size=x_m.shape[-2:], mode="bilinear")
    expect = head.cls_seg(head.fuse(torch.cat([x_m, x_s, high], 1)))
    torch.testing.assert_close(head(fs), expect, atol=1e-5, rtol=1e-4)


def test_dshead_without_dynamic_sampling_fuses_the_low_and_aspp_features_only() -> None:
    """dynamic_sampling=False: the network without CGDS (DSNet's text's "baseline")."""
    torch.manual_seed(0)
    head = DSHead(CH, 3, channels=6, low_channels=5, aspp_channels=7, dynamic_sampling=False)
    head.eval()
    assert not any(n.startswith(("offset_conv", "sample_")) for n, _ in head.named_parameters())
    fs = feats(os=16)
    x_m = head.modify_conv(fs[2])
    high = F.interpolate(head.aspp(fs[4]), size=x_m.shape[-2:], mode="bilinear")
    expect = head.cls_seg(head.fuse(torch.cat([x_m, high], 1)))
    torch.testing.assert_close(head(fs), expect, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- CaC-Net
def test_cac_kernel_is_q_transpose_k() -> None:
    torch.manual_seed(0)
    m = CaCModule(6, 6, kernel_size=3, reduce=False, query_norm="none")
    x = torch.randn(2, 6, 5, 4)
    wq = m.query_conv.weight.view(9, 6)
    wk = m.key_conv.weight.view(6, 6)
    for b in range(2):
        xbar = x[b].reshape(6, -1).T  # (n, c)
        q_bar, k_bar = xbar @ wq.T, xbar @ wk.T  # (n, s²), (n, c)
        d_bar = q_bar.T @ k_bar  # Eq. (1): (s², c)
        expect = d_bar.T.reshape(6, 3, 3)  # D[ch, i, j] = D̄[i·s + j, ch]
        torch.testing.assert_close(m.raw_kernel(x)[b], expect, atol=1e-4, rtol=1e-4)


def test_cac_default_kernel_does_not_depend_on_image_size() -> None:
    # Tiling an image 3×3 keeps its statistics; with the literal Eq. (1) sum the kernel grows 9×,
    # with the default mean it is unchanged (evaluation on whole images of another size).
    torch.manual_seed(0)
    x = torch.randn(1, 4, 5, 5)
    tiled = x.repeat(1, 1, 3, 3)
    mean = CaCModule(4, 4, kernel_size=3, reduce=False).eval()
    torch.testing.assert_close(mean.raw_kernel(tiled), mean.raw_kernel(x), atol=1e-5, rtol=1e-4)
    literal = CaCModule(4, 4, kernel_size=3, reduce=False, query_norm="none").eval()
    torch.testing.assert_close(
        literal.raw_kernel(tiled), 9 * literal.raw_kernel(x), atol=1e-4, rtol=1e-4
    )


def test_cac_reweighting_eq2() -> None:
    torch.manual_seed(0)
    m = CaCModule(4, 4, kernel_size=3, dilations=(1, 2, 3), reduce=False).eval()
    x = torch.randn(1, 4, 9, 9)
    kernel = m.kernel_norm(m.raw_kernel(x))
    w = sum(
        torch.sigmoid(F.conv2d(x, kernel[0].unsqueeze(1), padding=d, dilation=d, groups=4))
        for d in (1, 2, 3)
    )
    torch.testing.assert_close(m(x), x * w, atol=1e-5, rtol=1e-4)
    assert isinstance(m.kernel_norm, nn.BatchNorm2d)
