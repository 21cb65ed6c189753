"""Inference modes: sliding window, multi-scale + flip, and their config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynaseg.errors import ConfigError
from dynaseg.models.inference import (
    InferenceConfig,
    infer,
    scaled_size,
    slide_logits,
    slide_windows,
)
from dynaseg.run.recipes import build_model
from helpers import TINY, compose_config


def conv1x1(num_classes: int = 5, seed: int = 0) -> torch.nn.Conv2d:
    """A translation-equivariant and flip-symmetric "network": one 1×1 conv."""
    torch.manual_seed(seed)
    return torch.nn.Conv2d(3, num_classes, kernel_size=1)


def test_slide_windows_cover_the_image_and_end_at_its_edge() -> None:
    h, w = 37, 53  # neither a multiple of the stride nor of the crop
    boxes = slide_windows(h, w, (16, 20), (10, 12))
    covered = torch.zeros(h, w, dtype=torch.int64)
    for y1, y2, x1, x2 in boxes:
        assert (y2 - y1, x2 - x1) == (16, 20)  # clamped, never padded
        covered[y1:y2, x1:x2] += 1
    assert covered.min() >= 1
    # rows start at 0, 10, 20 then the last is clamped to end at 37; columns 0, 12, 24, then 33
    assert sorted({b[0] for b in boxes}) == [0, 10, 20, 21]
    assert sorted({b[2] for b in boxes}) == [0, 12, 24, 33]
    assert len(boxes) == 4 * 4
    # an image smaller than the crop is one window of its own size
    assert slide_windows(8, 9, (16, 20), (10, 12)) == [(0, 8, 0, 9)]


def test_slide_equals_whole_for_a_translation_equivariant_model() -> None:
    net = conv1x1()
    images = torch.randn(2, 3, 37, 53)
    with torch.no_grad():
        whole = net(images)
        slid = slide_logits(net, images, crop_size=(16, 20), stride=(10, 12))
    assert slid.shape == whole.shape
    torch.testing.assert_close(slid, whole, rtol=0, atol=1e-6)


def test_slide_batches_every_window_of_the_batch_in_one_call() -> None:
    net = conv1x1()
    calls: list[tuple[int, ...]] = []

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return net(x)

    with torch.no_grad():
        slide_logits(logits_fn, torch.randn(2, 3, 37, 53), (16, 20), (10, 12))
    assert calls == [(2 * 16, 3, 16, 20)]


def test_slide_resizes_low_resolution_window_logits() -> None:
    """A stride-2 model: each window's logits are upsampled to the window before summing."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, kernel_size=1, stride=2)
    images = torch.randn(1, 3, 30, 30)
    cfg = InferenceConfig.from_dict({"mode": "slide", "crop_size": [30, 30], "stride": [10, 10]})
    with torch.no_grad():
        out = infer(net, images, cfg)
        ref = F.interpolate(net(images), size=(30, 30), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, ref)


def test_flip_on_a_flip_symmetric_model_equals_softmax_of_one_pass() -> None:
    net = conv1x1()
    images = torch.randn(2, 3, 24, 31)
    cfg = InferenceConfig.from_dict({"flip": True})
    with torch.no_grad():
        out = infer(net, images, cfg)
    torch.testing.assert_close(out, net(images).softmax(1).detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.sum(1), torch.ones(2, 24, 31))  # probabilities


def test_multiscale_flip_averages_probabilities_at_the_output_size() -> None:
    """Reference: the mean over scales × {image, mirrored image} of softmax(logits resized to
    the output size), the mirrored pass mirrored back — computed independently here, on a model
    that is *not* flip-symmetric (a 1×3 kernel), so a missing un-flip would show."""
    torch.manual_seed(1)
    net = torch.nn.Conv2d(3, 4, kernel_size=(1, 3), padding=(0, 1))
    images = torch.randn(1, 3, 20, 28)
    scales = [0.5, 1.0, 1.5]
    out_size = (40, 56)
    cfg = InferenceConfig.from_dict({"scales": scales, "flip": True})
    with torch.no_grad():
        out = infer(net, images, cfg, out_size)
        refs = []
        for s in scales:
            x = F.interpolate(images, size=(int(20 * s + 0.5), int(28 * s + 0.5)), mode="bilinear")
            for flip in (False, True):
                y = net(x.flip(-1)).flip(-1) if flip else net(x)
                refs.append(F.interpolate(y, size=out_size, mode="bilinear").softmax(1))
        ref = torch.stack(refs).mean(0)
    assert out.shape == (1, 4, *out_size)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # flipping matters for this model: without it the result differs
    no_flip = infer(net, images, InferenceConfig.from_dict({"scales": scales}), out_size)
    assert (no_flip - out).abs().max() > 1e-3


@pytest.mark.parametrize("align_corners", [False, True])
def test_multiscale_rescales_the_images_half_pixel_like_cv2(align_corners: bool) -> None:
    """mmseg's MS test resizes the test *images* with cv2 (half-pixel centres) in its pipeline,
    also in its align_corners=True (Cityscapes 769) configs; align_corners is the logits'."""
    import cv2
    import numpy as np

    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x[:, :2]

    torch.manual_seed(3)
    images = torch.randn(1, 3, 21, 30)
    cfg = InferenceConfig.from_dict({"scales": [0.5, 1.75], "align_corners": align_corners})
    infer(record, images, cfg)
    hwc = images[0].permute(1, 2, 0).numpy()
    for x, (h, w) in zip(seen, [(11, 15), (37, 53)], strict=True):
        ref = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_LINEAR)
        torch.testing.assert_close(
            x[0].permute(1, 2, 0), torch.from_numpy(np.ascontiguousarray(ref)), rtol=0, atol=1e-4
        )


def test_multiscale_composes_with_slide() -> None:
    net = conv1x1()
    images = torch.randn(1, 3, 33, 47)
    slide = {"mode": "slide", "crop_size": [16, 16], "stride": [11, 11]}
    ms = {"scales": [0.75, 1.25], "flip": True}
    with torch.no_grad():
        out = infer(net, images, InferenceConfig.from_dict({**slide, **ms}))
        ref = infer(net, images, InferenceConfig.from_dict(ms))  # whole: equal for a 1×1 conv
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_scaled_size_rounds_like_mmcv() -> None:
    assert scaled_size(512, 683, 0.75) == (384, 512)
    assert scaled_size(1024, 2048, 1.75) == (1792, 3584)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mode": "tiles"}, "model.inference.mode='tiles': expected one of whole, slide or null"),
        ({"mode": "slide", "crop_size": [64, 64]}, "needs crop_size and stride"),
        (
            {"mode": "slide", "crop_size": [64], "stride": [32, 32]},
            r"model.inference.crop_size=\[64\]: expected \[h, w\] of positive ints",
        ),
        ({"scales": []}, r"model.inference.scales=\[\]: expected a non-empty list"),
        ({"flips": True}, "unknown key"),
    ],
)
def test_bad_inference_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InferenceConfig.from_dict(raw)


def test_module_uses_its_inference_config_for_evaluation() -> None:
    cfg = compose_config("train", TINY)
    module = build_model(cfg).eval()
    assert module.hparams.inference["mode"] == "whole"
    images = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        whole = module(images)
        torch.testing.assert_close(whole, module.net(images))
        slide_cfg = module.set_inference({"mode": "slide", "crop_size": [32, 32], "stride": 24})
        assert module.hparams.inference["stride"] == [24, 24]
        slid = module(images)
        ref = slide_logits(module.net.decode_logits, images, (32, 32), (24, 24))
    assert slide_cfg.mode == "slide"
    torch.testing.assert_close(slid, ref)
    assert (slid - whole).abs().max() > 1e-4  # the backbone's padding makes the modes differ
