"""SAC-single head layouts (Scale-adaptive Convolutions for Scene Parsing, ICCV 2017 §4.1)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynaseg.errors import ConfigError
from dynaseg.models.heads import SACHead
from dynaseg.models.scale_adaptive import ScaleAdaptiveConv2d, scale_adaptive_conv2d
from helpers import record_grid_sample

CH = [4, 8, 8, 12, 16]


def stage_features(size: int = 24) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, c, size, size) for c in CH]


def test_paper_layout_is_one_scale_adaptive_3x3_classifier_on_stage5() -> None:
    head = SACHead(CH, 5, layout="sac_classifier", num_convs=0, dilation=4).eval()
    sac = [m for m in head.modules() if isinstance(m, ScaleAdaptiveConv2d)]
    assert len(sac) == 1 and sac[0] is head.conv_seg
    assert head.conv_seg.kernel_size == (3, 3) and head.conv_seg.dilation == (4, 4)
    assert (head.conv_seg.in_channels, head.conv_seg.out_channels) == (CH[4], 5)
    # every other conv is the 1-channel scale regression; nothing else (no BN, no 1×1 classifier)
    convs = [n for n, m in head.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(convs) == ["conv_seg", "scale_regression.conv"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in head.modules())
    with torch.no_grad():
        head.scale_regression.conv.bias.fill_(1.4)
        fs = stage_features()
        expect = scale_adaptive_conv2d(
            fs[4], head.scale_regression(fs[4]), head.conv_seg.weight, head.conv_seg.bias, 4
        )
        torch.testing.assert_close(head(fs), expect)


def test_fcn_last_conv_layout_keeps_the_1x1_classifier() -> None:
    head = SACHead(CH, 5, channels=6, layout="fcn_last_conv", num_convs=2)
    sac = [n for n, m in head.named_modules() if isinstance(m, ScaleAdaptiveConv2d)]
    assert sac == ["sac_conv"]
    assert type(head.conv_seg) is nn.Conv2d and head.conv_seg.kernel_size == (1, 1)
    assert len(head.convs) == 1  # num_convs − 1 standard convs before the SAC one


def test_baseline_is_the_same_layers_with_standard_convs() -> None:
    """adaptive=False: the paper's baseline — a plain 3×3 classifier, parameter names shared with
    SAC-single, so a baseline checkpoint initialises the SAC-only rows."""
    base = SACHead(CH, 5, dilation=4, adaptive=False).eval()
    sac = SACHead(CH, 5, dilation=4).eval()
    assert not hasattr(base, "scale_regression")
    assert set(sac.state_dict()) - set(base.state_dict()) == {
        "scale_regression.conv.weight",
        "scale_regression.conv.bias",
    }
    fs = stage_features()
    with torch.no_grad():
        expect = F.conv2d(fs[4], base.conv_seg.weight, base.conv_seg.bias, padding=4, dilation=4)
        torch.testing.assert_close(base(fs), expect)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "classifier"}, "layout='classifier': expected 'sac_classifier'"),
        ({"layout": "fcn_last_conv", "num_convs": 0}, "num_convs=0: expected ≥ 1"),
        ({"num_convs": -1}, "num_convs=-1: expected ≥ 0"),
    ],
)
def test_bad_layout_arguments_are_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SACHead(CH, 5, **kwargs)


def test_head_positions_under_bf16_autocast_equal_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    grids = record_grid_sample(monkeypatch)
    head = SACHead(CH, 5, dilation=4).eval()
    with torch.no_grad():
        head.scale_regression.conv.bias.fill_(1.3)
        fs = stage_features(40)
        ref = head(fs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            amp = head(fs)
    assert torch.equal(grids[1], grids[0]) and grids[1].dtype == torch.float32
    torch.testing.assert_close(amp.float(), ref, atol=0.3, rtol=0.05)
