"""CaC-Net Table 6 alternatives to the context-adaptive kernel (``weighting``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynaseg.errors import ConfigError
from dynaseg.models.heads import CaCHead, CaCModule

CH = [4, 8, 8, 12, 16]


@pytest.mark.parametrize("weighting", ["cac", "fixed", "gap", "se"])
def test_each_weighting_trains_in_the_head(weighting: str) -> None:
    torch.manual_seed(0)
    channels = 64 if weighting == "se" else 8  # SE's bottleneck: 64 / 16 = 4 hidden units
    head = CaCHead(CH, 3, channels=channels, weighting=weighting).train()
    feats = [torch.randn(2, c, 12, 12) for c in CH]
    out = head(feats)
    assert out.shape == (2, 3, 12, 12)
    (out * torch.randn_like(out)).sum().backward()
    dead = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_fixed_kernels_are_input_invariant_depthwise_convs() -> None:
    torch.manual_seed(0)
    m = CaCModule(4, 4, kernel_size=3, dilations=(1, 2), reduce=False, weighting="fixed").eval()
    x = torch.randn(2, 4, 9, 9)
    w = m.fixed_kernel.weight  # (4, 1, 3, 3)
    expect = sum(torch.sigmoid(F.conv2d(x, w, padding=d, dilation=d, groups=4)) for d in (1, 2))
    torch.testing.assert_close(m.weights(x), expect, atol=1e-6, rtol=1e-5)
    assert torch.equal(m.kernel(x)[0], m.kernel(x)[1])  # the same kernel for every image


def test_gap_kernels_come_from_the_pooled_feature() -> None:
    torch.manual_seed(0)
    m = CaCModule(4, 4, kernel_size=3, dilations=(1,), reduce=False, weighting="gap").eval()
    assert m.kernel_fc.weight.numel() == 3 * 3 * 4 * 4  # s²c², as §4.2 counts
    x = torch.randn(2, 4, 9, 9)
    raw = m.kernel_fc(x.mean(dim=(2, 3))).view(2, 4, 3, 3)
    torch.testing.assert_close(m.kernel(x), m.kernel_norm(raw))
    expect = torch.cat(
        [
            torch.sigmoid(F.conv2d(x[i : i + 1], m.kernel(x)[i].unsqueeze(1), padding=1, groups=4))
            for i in range(2)
        ]
    )
    torch.testing.assert_close(m.weights(x), expect, atol=1e-6, rtol=1e-5)


def test_se_weighting_is_a_global_channel_reweighting() -> None:
    torch.manual_seed(0)
    m = CaCModule(32, 32, reduce=False, weighting="se").eval()
    x = torch.randn(2, 32, 7, 7)
    gate = torch.sigmoid(m.se(x.mean(dim=(2, 3))))
    torch.testing.assert_close(m(x), x * gate[:, :, None, None])
    assert m.se[0].out_features == 2  # 32 / SENet's reduction 16


def test_unknown_weighting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Table 6"):
        CaCModule(4, 4, weighting="fc")


@pytest.mark.parametrize("weighting", ["cac", "fixed", "gap", "se"])
def test_cac_head_runs_in_float64_and_matches_float32(weighting: str) -> None:
    """Issue 19 item 8: Eq. (1) used to return float32 for a float64 input (BN then raised)."""
    torch.manual_seed(0)
    channels = 64 if weighting == "se" else 8
    head = CaCHead(CH, 3, channels=channels, weighting=weighting).eval()
    feats = [torch.randn(2, c, 12, 12) for c in CH]
    out32 = head(feats)
    head64 = head.double()
    out64 = head64([f.double() for f in feats])
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)


def test_no_cac_module_and_no_pooling_is_table1_fcn_baseline() -> None:
    """CaC-Net Table 1 "FCN": the head minus CaC modules and global pooling = fuse conv + classifier."""
    torch.manual_seed(0)
    head = CaCHead(CH, 3, channels=8, num_heads=0, kernel_sizes=[], global_pool=False).eval()
    feats = [torch.randn(2, c, 6, 6) for c in CH]
    expected = head.cls_seg(head.bottleneck(feats[4]))
    torch.testing.assert_close(head(feats), expected)
    assert head.bottleneck.conv.in_channels == CH[4] and not head.cac_modules
    with pytest.raises(ConfigError, match="global_pool=True: expected false when num_heads=0"):
        CaCHead(CH, 3, channels=8, num_heads=0, kernel_sizes=[], global_pool=True)
