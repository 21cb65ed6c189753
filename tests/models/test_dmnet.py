"""DMNet head: Eq. (1) against a per-image reference, and the parameter counts of mmseg's DMHead."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynaseg.models.heads import DMHead, DynamicConvModule, FCNHead
from dynaseg.models.ops import dynamic_depthwise_conv2d

RESNET50_CHANNELS = [64, 256, 512, 1024, 2048]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def reference_depthwise(x: torch.Tensor, filters: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """Straightforward per-image, per-channel correlation with explicit mmseg-style padding."""
    k = filters.shape[-1]
    span = dilation * (k - 1)
    left, right = span - span // 2, span // 2
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        padded = F.pad(x[b : b + 1], (left, right, left, right))
        for c in range(x.shape[1]):
            out[b, c] = F.conv2d(
                padded[:, c : c + 1], filters[b, c][None, None], dilation=dilation
            )[0, 0]
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7])
def test_dynamic_depthwise_conv_matches_per_image_reference(k: int) -> None:
    torch.manual_seed(k)
    x = torch.randn(3, 5, 11, 9, dtype=torch.float64)
    filters = torch.randn(3, 5, k, k, dtype=torch.float64)
    out = dynamic_depthwise_conv2d(x, filters)
    assert out.shape == x.shape
    assert (out - reference_depthwise(x, filters)).abs().max() <= 1e-5


def test_even_kernel_is_padded_one_more_on_left_top() -> None:
    # A 2×2 filter that picks its top-left tap reads the pixel one up-left of each output.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    filters = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    out = dynamic_depthwise_conv2d(x, filters)
    assert out[0, 0, 1, 1] == x[0, 0, 0, 0]
    assert out[0, 0, 0, 0] == 0.0  # padding


def test_dcm_uses_each_images_own_context() -> None:
    torch.manual_seed(0)
    dcm = DynamicConvModule(3, in_channels=8, channels=4).eval()
    x = torch.randn(2, 8, 7, 7)
    both = dcm(x)
    alone = torch.cat([dcm(x[:1]), dcm(x[1:])])
    assert torch.allclose(both, alone, atol=1e-6)
    # Changing image 1 must not change image 0's output (no cross-talk in the batched conv).
    x2 = x.clone()
    x2[1] = torch.randn(8, 7, 7)
    assert torch.allclose(dcm(x2)[0], both[0], atol=1e-6)


def test_dmnet_parameter_counts_match_mmseg() -> None:
    head = DMHead(RESNET50_CHANNELS, num_classes=150)
    assert n_params(head) == 27_351_190
    assert n_params(head.dcm_modules) == 8_398_848  # ≈ 8.4M (paper Table 3: 9M)
    aux = FCNHead(RESNET50_CHANNELS, 150, in_index=3, channels=256, num_convs=1, concat_input=False)
    assert n_params(aux) == 2_398_358


def test_context_stage_changes_filter_generator_input() -> None:
    head = DMHead([8, 16, 32, 64, 128], num_classes=5, channels=16, context_index=2)
    assert all(d.filter_gen_conv.in_channels == 32 for d in head.dcm_modules)
    feats = [torch.randn(2, c, 6, 6) for c in [8, 16, 32, 64, 128]]
    assert head(feats).shape == (2, 5, 6, 6)
    with pytest.raises(ValueError, match="context_index"):
        DMHead([8, 16], num_classes=5, in_index=1, context_index=7)


def test_dmnet_without_dcms_is_table5_fcn() -> None:
    head = DMHead(RESNET50_CHANNELS, num_classes=21, filter_sizes=[])
    assert len(head.dcm_modules) == 0
    assert head.bottleneck.conv.in_channels == 2048  # input → 3×3 conv → classifier
    feats = [torch.randn(1, c, 4, 4) for c in RESNET50_CHANNELS]
    assert head(feats).shape == (1, 21, 4, 4)


@pytest.mark.parametrize("head", ["dmnet", "cacnet"])
def test_fast_dynamic_conv_head_equals_grouped_reference(head: str) -> None:
    """Heads with ``dynamic_conv="fast"`` give the reference's logits and parameter gradients."""
    from dynaseg.models.heads import CaCHead

    channels = [8, 8, 8, 16, 32]
    feats = [torch.randn(2, c, 9, 9) for c in channels]

    def build(impl: str) -> torch.nn.Module:
        torch.manual_seed(0)
        if head == "dmnet":
            return DMHead(channels, 5, channels=8, filter_sizes=(1, 2, 3, 5), dynamic_conv=impl)
        return CaCHead(channels, 5, channels=8, kernel_sizes=[3, 4], dynamic_conv=impl)

    results = {}
    for impl in ("grouped", "fast"):
        model = build(impl).train()
        torch.manual_seed(1)  # same dropout mask
        logits = model(feats)
        logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[impl] = (logits, grads, list(model.state_dict()))
    ref, fast = results["grouped"], results["fast"]
    assert fast[2] == ref[2]  # same state-dict keys
    assert (fast[0] - ref[0]).abs().max() <= 1e-5
    for name, grad in ref[1].items():
        assert (fast[1][name] - grad).abs().max() <= 1e-5 * max(1.0, grad.abs().max().item()), name


def test_split_bottleneck_trains_like_the_concatenation_and_evaluates_bit_for_bit() -> None:
    channels = [8, 8, 8, 16, 32]
    feats = [torch.randn(2, c, 9, 9) for c in channels]
    results = {}
    for split in (False, True):
        torch.manual_seed(0)
        model = DMHead(channels, 5, channels=8, filter_sizes=(1, 3), split_bottleneck=split)
        with torch.no_grad():
            evaluated = model.eval()(feats)  # before training updates the BN statistics
        torch.manual_seed(1)  # same dropout mask
        logits = model.train()(feats)
        logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[split] = (logits, grads, evaluated)
    literal, split = results[False], results[True]
    assert (split[0] - literal[0]).abs().max() <= 1e-5
    for name, grad in literal[1].items():
        assert (split[1][name] - grad).abs().max() <= 1e-5 * max(1.0, grad.abs().max().item()), name
    assert torch.equal(split[2], literal[2])  # evaluation concatenates: identical logits
