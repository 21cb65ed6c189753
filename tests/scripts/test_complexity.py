"""dynaseg.complexity (behind scripts/complexity.py): FLOP/param counts of known small layers match
hand counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import deform_conv2d

from dynaseg import complexity
from dynaseg.run.entry import compose


@pytest.fixture(scope="module")
def cx():
    return complexity


def test_conv_hand_count(cx) -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    flops, _ = cx.count_flops(conv, torch.randn(1, 3, 8, 8))
    assert flops == 2 * (4 * 8 * 8) * (3 * 3 * 3)  # 2 FLOPs per MAC
    assert cx.count_params(conv) == 4 * 3 * 9 + 4


def test_depthwise_and_dilated_conv_hand_count(cx) -> None:
    dw = nn.Conv2d(6, 6, 5, padding=4, dilation=2, groups=6, bias=False)
    flops, _ = cx.count_flops(dw, torch.randn(2, 6, 10, 10))
    assert flops == 2 * (2 * 6 * 10 * 10) * 25
    assert cx.count_params(dw) == 6 * 25


def test_deform_conv_counted_like_conv(cx) -> None:
    class Deform(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(5, 4, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            offset = torch.zeros(x.shape[0], 18, *x.shape[-2:])
            return deform_conv2d(x, offset, self.weight, padding=1)

    flops, _ = cx.count_flops(Deform(), torch.randn(1, 4, 6, 7))
    assert flops == 2 * (5 * 6 * 7) * (4 * 9)


def test_head_complexity_excludes_classifier(cx) -> None:
    from dynaseg.models.heads import FCNHead

    head = FCNHead([4, 8], num_classes=3, in_index=1, channels=6, num_convs=1, concat_input=False)
    feats = [torch.randn(1, 4, 5, 5), torch.randn(1, 8, 5, 5)]
    params, flops = cx.head_complexity(head, feats)
    assert params == 6 * 8 * 9 + 2 * 6  # conv (no bias) + BN affine; conv_seg excluded
    assert flops == 2 * (6 * 5 * 5) * (8 * 9)


def test_composed_config_table(cx) -> None:
    cfg = compose("train", ["model=fcn", "model/backbone=resnet_tiny", "data=synthetic"])
    rows = dict((r[0], r[1:]) for r in cx.model_complexity(cfg, (32, 32)))
    whole = rows["whole model (backbone + heads)"]
    backbone = rows["backbone"]
    head = rows["decode head w/o conv_seg"]
    seg = rows["decode head conv_seg"]
    aux = rows["auxiliary head(s) (training only)"]
    assert whole[0] == backbone[0] + head[0] + seg[0] + aux[0]
    assert whole[1] == backbone[1] + head[1] + seg[1]  # inference runs no auxiliary head
    assert "whole model" in cx.format_table(list(cx.model_complexity(cfg, (32, 32))), "t")
