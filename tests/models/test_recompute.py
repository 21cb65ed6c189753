"""Selective recomputation of channel-expanding 1×1 convolutions (dynaseg.models.recompute)."""

from __future__ import annotations

import weakref

import pytest
import timm
import torch
from torch import nn

from dynaseg.models.recompute import expanding_pointwise_convs, recomputed_outputs


def _bottleneck_like() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 16, 1), nn.BatchNorm2d(16), nn.ReLU()
    )


def test_only_expanding_pointwise_convs_are_chosen() -> None:
    net = nn.Sequential(
        nn.Conv2d(8, 32, 1), nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 3), nn.Conv2d(8, 32, 1, stride=2)
    )
    assert expanding_pointwise_convs(net) == [net[0]]
    resnet = timm.create_model("resnet50c", features_only=True, output_stride=8)
    chosen = set(map(id, expanding_pointwise_convs(resnet)))
    names = sorted(n for n, m in resnet.named_modules() if id(m) in chosen)
    # every bottleneck's conv3 (3 + 4 + 6 + 3) and the stride-1 downsample 1×1s (layer1, 3, 4)
    assert len(names) == 19
    assert all(n.endswith(("conv3", "downsample.0")) for n in names)
    assert "layer2_0.downsample.0" not in names and "layer2.0.downsample.0" not in names


def test_resnet_gradients_are_unchanged() -> None:
    torch.manual_seed(0)
    net = timm.create_model("resnet50c", features_only=True, output_stride=8).train()
    x = torch.randn(2, 3, 64, 64)
    results = []
    for recompute in (False, True):
        with recomputed_outputs(expanding_pointwise_convs(net) if recompute else []):
            feats = net(x)
        loss = sum(f.square().mean() for f in feats)
        results.append((loss, torch.autograd.grad(loss, list(net.parameters()))))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.equal(a, b)  # the same convolution on the same input


def test_the_convolution_output_is_not_kept() -> None:
    net = _bottleneck_like().train()
    outputs: list[weakref.ref] = []
    net[2].register_forward_hook(lambda m, a, out: outputs.append(weakref.ref(out)))
    x = torch.randn(2, 3, 8, 8)
    kept = net(x)
    assert outputs[-1]() is not None  # plain autograd: the batch norm holds it
    with recomputed_outputs(expanding_pointwise_convs(net)):
        out = net(x)
    assert outputs[-1]() is None  # freed: only the recipe (the conv's input) is kept
    grads = torch.autograd.grad(out.sum(), list(net.parameters()))
    ref = torch.autograd.grad(kept.sum(), list(net.parameters()))
    for a, b in zip(grads, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_input_modified_in_place_is_reported() -> None:
    net = nn.Sequential(nn.Conv2d(2, 8, 1), nn.BatchNorm2d(8)).train()
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    h = x * 1.0
    with recomputed_outputs(expanding_pointwise_convs(net)):
        out = net(h)
    h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place after the forward pass"):
        out.sum().backward()
