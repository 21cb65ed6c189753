"""The compiled CPU kernels against their references: the fast dynamic depthwise convolution
against the grouped-convolution formulation, adaptive average pooling against PyTorch's bit for bit.

``impl="fast"`` has two paths: the compiled CPU kernel (``native``) and, where that cannot run
(GPU, bf16, ``torch.compile``, no C compiler), the custom backward made of forward convolutions
(``convolutions``). The ``fast_path`` fixture runs a test on each.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

from dynaseg.models.ops import (
    adaptive_avg_pool2d,
    dynamic_depthwise_conv2d,
    grouped_dynamic_depthwise_conv2d,
    native,
)

needs_compiler = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)


@pytest.fixture(params=["native", "convolutions"])
def fast_path(request, monkeypatch) -> str:
    if request.param == "native":
        if native.native_kernel() is None:
            pytest.skip("the native kernel could not be built here")
    else:
        monkeypatch.setattr(native, "supports", lambda *tensors: False)
    return request.param


@needs_compiler
def test_native_kernel_is_built_and_used_on_cpu() -> None:
    assert native.native_kernel() is not None
    x, filters = torch.randn(1, 2, 5, 5), torch.randn(1, 2, 3, 3)
    assert native.supports(x, filters) and native.supports(x.double(), filters.double())
    assert not native.supports(x.bfloat16(), filters.bfloat16())
    out = dynamic_depthwise_conv2d(x.requires_grad_(), filters)
    assert type(out.grad_fn).__name__ == "NativeDynamicDepthwiseConvBackward"


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_fast_dynamic_conv_equals_grouped_reference(k: int, dilation: int, fast_path: str) -> None:
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


@pytest.mark.parametrize("shape, k, dilation", [((3, 4, 9, 37), 3, 1), ((1, 2, 12, 11), 9, 2)])
def test_native_kernel_handles_ragged_widths_and_large_kernels(shape, k, dilation) -> None:
    """Widths that are not a multiple of the vector width, and k > 7 (the generic loops)."""
    torch.manual_seed(k)
    x = torch.randn(*shape, requires_grad=True)
    filters = torch.randn(*shape[:2], k, k, requires_grad=True)
    grad = torch.randn(*shape)
    fast = dynamic_depthwise_conv2d(x, filters, dilation)
    ref = grouped_dynamic_depthwise_conv2d(x, filters, dilation)
    for a, b in zip(
        (fast, *torch.autograd.grad(fast, (x, filters), grad)),
        (ref, *torch.autograd.grad(ref, (x, filters), grad)),
        strict=True,
    ):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max().item())


def test_missing_compiler_warns_once_and_falls_back(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_compiler", lambda: None)
    monkeypatch.setenv("DYNASEG_CACHE_DIR", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="no C compiler found.*grouped-convolution"):
        assert native.native_kernel() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once
        x, filters = torch.randn(1, 2, 6, 6), torch.randn(1, 2, 3, 3)
        out = dynamic_depthwise_conv2d(x, filters)
        pooled = adaptive_avg_pool2d(x, 4)
    assert torch.allclose(out, grouped_dynamic_depthwise_conv2d(x, filters), atol=1e-6)
    assert torch.equal(pooled, F.adaptive_avg_pool2d(x, 4))


@needs_compiler
def test_kernel_is_compiled_into_the_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setenv("DYNASEG_CACHE_DIR", str(tmp_path))
    assert native.native_kernel() is not None
    built = list(tmp_path.glob("dynaseg-kernels-*"))
    assert len(built) == 1 and built[0].stat().st_size > 0


def hard_values(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Values over seven orders of magnitude, with +0, -0, ±inf and NaN among them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype)
    x *= 10.0 ** torch.randint(-3, 4, shape, generator=g).to(dtype)
    x[x.abs() < 0.05] = 0.0
    flat = x.view(-1)
    flat[:: max(1, flat.numel() // 7)] = -0.0
    if flat.numel() > 40:
        flat[11], flat[23], flat[37] = float("inf"), float("-inf"), float("nan")
    return x


def same_floats(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit: the same values, NaN where the other has NaN, the same signed zeros."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and torch.equal(a.isnan(), b.isnan())
        and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
        and torch.equal(a.signbit(), b.signbit())
    )


def native_pool_calls(monkeypatch) -> list[tuple[int, int]]:
    """Record the output sizes :func:`native.adaptive_avg_pool2d` is called with."""
    calls: list[tuple[int, int]] = []
    pool = native.adaptive_avg_pool2d

    def counted(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        calls.append((out_h, out_w))
        return pool(x, out_h, out_w)

    monkeypatch.setattr(native, "adaptive_avg_pool2d", counted)
    return calls


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "bins"),
    [
        ((8, 64, 16, 16), 3),  # the miniature's context, DMNet's k = 3, 5, 7
        ((8, 64, 16, 16), 5),
        ((8, 64, 16, 16), 7),
        ((2, 21, 13, 9), 6),  # PSP's bins on a ragged map; planes not a multiple of 16
        ((1, 3, 20, 20), (3, 5)),
        ((3, 17, 7, 11), (None, 2)),  # None: the input's height
        ((2, 5, 4, 3), (9, 12)),  # more bins than pixels: they overlap
        ((1, 40, 64, 64), 2),
    ],
)
def test_native_adaptive_pool_equals_pytorch_bit_for_bit(shape, bins, dtype, monkeypatch) -> None:
    calls = native_pool_calls(monkeypatch)
    for seed in range(4):
        x = hard_values(shape, dtype, seed)
        assert same_floats(adaptive_avg_pool2d(x, bins), F.adaptive_avg_pool2d(x, bins))
    assert len(calls) == 4  # the kernel, not PyTorch, made them


@needs_compiler
def test_native_adaptive_pool_is_the_same_on_any_number_of_threads(monkeypatch) -> None:
    x = hard_values((4, 37, 16, 16), torch.float32, 0)
    reference = F.adaptive_avg_pool2d(x, 5)
    calls = native_pool_calls(monkeypatch)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            assert same_floats(adaptive_avg_pool2d(x, 5), reference)
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 3


@needs_compiler
def test_bit_equality_check_sees_another_order_of_summation() -> None:
    """Control: the same bins summed column by column (a transposed input) differ in some float,
    so the equality above is about the order of summation, not only the bins."""
    x = torch.randn(8, 64, 16, 16, generator=torch.Generator().manual_seed(1))
    column_major = F.adaptive_avg_pool2d(x.transpose(-1, -2), 7).transpose(-1, -2)
    torch.testing.assert_close(column_major, F.adaptive_avg_pool2d(x, 7))
    assert not same_floats(column_major, F.adaptive_avg_pool2d(x, 7))
    assert same_floats(adaptive_avg_pool2d(x, 7), F.adaptive_avg_pool2d(x, 7))


@needs_compiler
def test_adaptive_pool_leaves_to_pytorch_what_the_kernel_does_not_take(monkeypatch) -> None:
    calls = native_pool_calls(monkeypatch)
    x = hard_values((2, 16, 12, 12), torch.float32, 2).nan_to_num(0.0, 0.0, 0.0)
    for other in (
        x.contiguous(memory_format=torch.channels_last),  # PyTorch's NHWC kernel
        x.bfloat16(),
        x[:, :, ::2],  # strided
        x[0],  # (C, H, W)
    ):
        assert same_floats(adaptive_avg_pool2d(other, 3), F.adaptive_avg_pool2d(other, 3))
    assert same_floats(adaptive_avg_pool2d(x, 1), x.mean((-2, -1), keepdim=True))  # a mean
    assert calls == []
    # a gradient needed: PyTorch's autograd, the same values and gradient as F's
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = adaptive_avg_pool2d(a, 5), F.adaptive_avg_pool2d(b, 5)
    grad = torch.randn_like(out_a)
    out_a.backward(grad)
    out_b.backward(grad)
    assert same_floats(out_a, out_b) and same_floats(a.grad, b.grad) and calls == []
    with torch.no_grad():  # no gradient needed after all: the kernel
        assert same_floats(adaptive_avg_pool2d(a, 5), out_b.detach())
    assert calls == [(5, 5)]


@needs_compiler
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the shape checks, as expected
def test_traced_ops_do_not_record_the_native_kernels() -> None:
    """A ctypes call is invisible to ``torch.jit.trace``: its output would be a constant of the
    example input. While tracing both ops take PyTorch's path, so the trace follows new inputs."""

    def net(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(dynamic_depthwise_conv2d(x, filters), 3)

    example = (torch.randn(2, 16, 9, 9), torch.randn(2, 16, 3, 3))
    traced = torch.jit.trace(net, example, check_trace=False)
    x, filters = torch.randn(2, 16, 9, 9), torch.randn(2, 16, 3, 3)
    torch.testing.assert_close(traced(x, filters), net(x, filters))


def test_fast_dynamic_conv_passes_gradcheck(fast_path: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: dynamic_depthwise_conv2d(a, b, 2, impl="fast"), (x, filters)
    )


def test_only_requested_gradients_are_computed(fast_path: str) -> None:
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    filters = torch.randn(1, 2, 3, 3)  # e.g. fixed filters
    dynamic_depthwise_conv2d(x, filters).sum().backward()
    ref = torch.autograd.grad(grouped_dynamic_depthwise_conv2d(x, filters).sum(), x)[0]
    assert torch.allclose(x.grad, ref, atol=1e-6)


def test_one_by_one_filter_is_a_per_channel_scale(fast_path: str) -> None:
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


def test_channels_last_input_gives_the_same_result(fast_path: str) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8, 8)
    filters = torch.randn(2, 4, 3, 3)
    out = dynamic_depthwise_conv2d(x.contiguous(memory_format=torch.channels_last), filters)
    assert torch.allclose(out, dynamic_depthwise_conv2d(x, filters, impl="grouped"), atol=1e-6)


def test_unknown_impl_is_rejected() -> None:
    with pytest.raises(ValueError, match="impl must be one of"):
        dynamic_depthwise_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), impl="fft")


def _conv_norm_act_pair():
    from dynaseg.models.layers import ConvNormAct

    torch.manual_seed(3)
    module = ConvNormAct(10, 6, 3, dilation=2)
    parts = [torch.randn(2, c, 9, 11, requires_grad=True) for c in (4, 1, 5)]
    return module, parts


def test_forward_concat_equals_the_concatenation_in_values_and_gradients() -> None:
    module, parts = _conv_norm_act_pair()
    module.train()
    grad = torch.randn(2, 6, 9, 11)
    literal = module(torch.cat(parts, dim=1))
    split = module.forward_concat(parts)
    wrt = [*parts, module.conv.weight, module.bn.weight]
    for a, b in zip(
        (literal, *torch.autograd.grad(literal, wrt, grad)),
        (split, *torch.autograd.grad(split, wrt, grad)),
        strict=True,
    ):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max().item())
    # No tensor of the concatenation's size is kept for backward.
    saved: list[tuple[int, ...]] = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(tuple(t.shape)) or t, lambda t: t
    ):
        module.forward_concat(parts)
    assert (2, 10, 9, 11) not in saved and (2, 4, 9, 11) in saved


def test_forward_concat_without_gradients_is_the_literal_concatenation() -> None:
    module, parts = _conv_norm_act_pair()
    module.eval()
    with torch.no_grad():
        assert torch.equal(module.forward_concat(parts), module(torch.cat(parts, dim=1)))


def test_forward_concat_rejects_parts_that_do_not_add_up() -> None:
    module, parts = _conv_norm_act_pair()
    with pytest.raises(
        ValueError, match=r"parts have \[4, 1\] channels \(sum 5\), the conv expects 10"
    ):
        module.forward_concat(parts[:2])


@pytest.mark.parametrize("kind", ["randn", "ties"])
@pytest.mark.parametrize(
    ("shape", "args"),
    [((2, 8, 17, 13), (3, 2, 1)), ((1, 4, 16, 16), (2, 2, 0)), ((2, 3, 9, 9), (3, 1, 1))],
)
def test_channels_last_max_pool_equals_max_pool(shape, args, kind) -> None:
    from torch import nn

    from dynaseg.models.layers import ChannelsLastMaxPool2d

    torch.manual_seed(0)
    x = torch.randn(*shape) if kind == "randn" else torch.randint(0, 3, shape).float()
    reference, fast = nn.MaxPool2d(*args), ChannelsLastMaxPool2d(*args)
    with torch.no_grad():  # the NHWC path
        out = fast(x)
        assert out.is_contiguous() and torch.equal(out, reference(x))
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = reference(a), fast(b)  # with a gradient: the NCHW path
    grad = torch.randn_like(out_a)
    out_a.backward(grad)
    out_b.backward(grad)
    assert torch.equal(out_a, out_b) and torch.equal(a.grad, b.grad)


def test_backbone_max_pools_are_replaced_and_features_unchanged() -> None:
    from torch import nn

    from dynaseg.models.backbones import TimmBackbone
    from dynaseg.models.layers import ChannelsLastMaxPool2d

    torch.manual_seed(0)
    backbone = TimmBackbone("resnet18", stem_width=8, channels=[8, 8, 16, 16], layers=[1, 1, 1, 1])
    pools = [m for m in backbone.modules() if isinstance(m, nn.MaxPool2d)]
    assert pools and all(type(m) is ChannelsLastMaxPool2d for m in pools)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fast = backbone.eval()(x)
        for pool in pools:
            pool.forward = nn.MaxPool2d.forward.__get__(pool)  # the plain NCHW kernel
        plain = backbone(x)
    assert all(torch.equal(f, p) for f, p in zip(fast, plain, strict=True))
