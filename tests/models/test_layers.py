"""The fast dynamic depthwise convolution against the grouped-convolution reference."""

from __future__ import annotations

import pytest
import torch

from dynaseg.models.layers import dynamic_depthwise_conv2d, grouped_dynamic_depthwise_conv2d


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_fast_dynamic_conv_equals_grouped_reference(k: int, dilation: int) -> None:
    torch.manual_seed(10 * k + dilation)
    x = torch.randn(2, 6, 13, 10, requires_grad=True)
    filters = torch.randn(2, 6, k, k, requires_grad=True)
    grad = torch.randn(2, 6, 13, 10)
    results = {}
    for impl in ("grouped", "fast"):
        out = dynamic_depthwise_conv2d(x, filters, dilation, impl=impl)
        results[impl] = (out, *torch.autograd.grad(out, (x, filters), grad))
    names = ("out", "d/dx", "d/dw")
    for ref, fast, what in zip(results["grouped"], results["fast"], names, strict=True):
        assert fast.shape == ref.shape, what
        assert (fast - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item()), what
    # Not trivially zero: the gradients carry signal.
    assert results["fast"][2].abs().sum() > 0


def test_fast_dynamic_conv_passes_gradcheck() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: dynamic_depthwise_conv2d(a, b, 2, impl="fast"), (x, filters)
    )


def test_only_requested_gradients_are_computed() -> None:
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    filters = torch.randn(1, 2, 3, 3)  # e.g. fixed filters
    dynamic_depthwise_conv2d(x, filters).sum().backward()
    ref = torch.autograd.grad(grouped_dynamic_depthwise_conv2d(x, filters).sum(), x)[0]
    assert torch.allclose(x.grad, ref, atol=1e-6)


def test_one_by_one_filter_is_a_per_channel_scale() -> None:
    x = torch.randn(2, 3, 4, 4)
    filters = torch.randn(2, 3, 1, 1)
    assert torch.equal(dynamic_depthwise_conv2d(x, filters), x * filters)


def test_fast_path_follows_autocast_dtype_like_the_reference() -> None:
    x = torch.randn(1, 2, 6, 6)
    filters = torch.randn(1, 2, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = dynamic_depthwise_conv2d(x, filters, impl="grouped")
        fast = dynamic_depthwise_conv2d(x, filters, impl="fast")
    assert ref.dtype == fast.dtype == torch.bfloat16
    assert torch.allclose(ref.float(), fast.float(), atol=0.05)


def test_channels_last_input_gives_the_same_result() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8, 8)
    filters = torch.randn(2, 4, 3, 3)
    out = dynamic_depthwise_conv2d(x.contiguous(memory_format=torch.channels_last), filters)
    assert torch.allclose(out, dynamic_depthwise_conv2d(x, filters, impl="grouped"), atol=1e-6)


def test_unknown_impl_is_rejected() -> None:
    with pytest.raises(ValueError, match="impl must be one of"):
        dynamic_depthwise_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), impl="fft")
