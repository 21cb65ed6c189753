"""The frozen backbone's feature cache returns exactly what the backbone computes, only when it
cannot differ (dynaseg.models.feature_cache); every head reads only the features it names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from dynaseg.models.feature_cache import FeatureCache, tensor_digest, why_not_cacheable
from dynaseg.run.recipes import build_model
from helpers import ROOT, compose_config

HEAD_CONFIGS = sorted(p.stem for p in (ROOT / "conf" / "model" / "decode_head").glob("*.yaml"))


class TinyBackbone(nn.Module):
    """Three maps of different widths and strides, a BN and a dropout, like a timm backbone."""

    channels = [4, 8, 16]

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.mid = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.drop = nn.Dropout2d(0.5)
        self.top = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        a = self.stem(x)
        b = self.drop(self.mid(a))
        # a channels-last output: the cache must give back the same strides
        return [a, b, self.top(b).contiguous(memory_format=torch.channels_last)]


def frozen(backbone: nn.Module) -> nn.Module:
    backbone.requires_grad_(False)
    return backbone.eval()


def test_features_read_back_equal_the_backbones_with_their_strides(tmp_path) -> None:
    torch.manual_seed(0)
    backbone = frozen(TinyBackbone())
    cache = FeatureCache(tmp_path)
    x = torch.randn(2, 3, 16, 16)
    expected = backbone(x)
    backbone.calls = 0
    first = cache.features(backbone, x, [2, 0])
    second = cache.features(backbone, x, [0, 2])
    assert backbone.calls == 1 and (cache.misses, cache.hits) == (1, 1)
    for got in (first, second):
        assert got[1] is None  # no head named feature 1: not kept, hit or miss
        for i in (0, 2):
            assert torch.equal(got[i], expected[i])
            assert got[i].stride() == expected[i].stride() and got[i].dtype == expected[i].dtype
    assert len(list(tmp_path.glob("*/*.pt"))) == 1 and len(list(tmp_path.glob("*/key.json"))) == 1
    # another input, or the same bytes in another shape, is another entry
    cache.features(backbone, torch.randn(2, 3, 16, 16), [0, 2])
    cache.features(backbone, x.reshape(1, 3, 32, 16), [0, 2])
    assert cache.misses == 3 and backbone.calls == 3


def test_other_weights_or_other_features_never_read_a_stored_entry(tmp_path) -> None:
    torch.manual_seed(0)
    backbone = frozen(TinyBackbone())
    x = torch.randn(2, 3, 16, 16)
    FeatureCache(tmp_path).features(backbone, x, [2])
    with torch.no_grad():
        backbone.stem[1].running_mean += 1.0  # a buffer changed: another backbone state
    cache = FeatureCache(tmp_path)
    got = cache.features(backbone, x, [2])
    assert cache.misses == 1 and torch.equal(got[2], backbone(x)[2])
    cache.features(backbone, x, [1, 2])  # another feature set: its own directory
    assert cache.misses == 2 and len(list(tmp_path.glob("*/key.json"))) == 3


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda b, x: b.top.weight.requires_grad_(True), "trainable parameters"),
        (lambda b, x: b.stem[1].train(), "backbone.stem.1 (BatchNorm2d) is in training mode"),
        (lambda b, x: b.drop.train(), "backbone.drop (Dropout2d, p=0.5) is in training mode"),
        (lambda b, x: x.requires_grad_(True), "the input requires a gradient"),
    ],
)
def test_nothing_is_cached_when_the_result_could_differ(tmp_path, change, reason) -> None:
    torch.manual_seed(0)
    backbone = frozen(TinyBackbone())
    x = torch.randn(2, 3, 16, 16)
    change(backbone, x)
    assert reason in why_not_cacheable(backbone, x)
    got = FeatureCache(tmp_path).features(backbone, x, [2])
    assert len(got) == 3 and all(t is not None for t in got)  # the backbone's own output
    assert not tmp_path.exists() or not list(tmp_path.rglob("*.pt"))


def test_nothing_is_cached_under_autocast(tmp_path) -> None:
    backbone = frozen(TinyBackbone())
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert why_not_cacheable(backbone, x) == "autocast is active"
        FeatureCache(tmp_path).features(backbone, x, [2])
    assert not list(tmp_path.rglob("*.pt"))


def test_a_torn_file_is_computed_again(tmp_path) -> None:
    torch.manual_seed(0)
    backbone = frozen(TinyBackbone())
    x = torch.randn(2, 3, 16, 16)
    FeatureCache(tmp_path).features(backbone, x, [2])
    (path,) = tmp_path.glob("*/*.pt")
    path.write_bytes(path.read_bytes()[:100])
    cache = FeatureCache(tmp_path)
    got = cache.features(backbone, x, [2])
    assert cache.misses == 1 and torch.equal(got[2], backbone(x)[2])
    assert torch.equal(torch.load(path, weights_only=True)[2], got[2])  # rewritten whole


def test_the_least_recently_used_files_go_when_the_cache_is_full(tmp_path) -> None:
    torch.manual_seed(0)
    backbone = frozen(TinyBackbone())
    inputs = [torch.randn(2, 3, 16, 16) for _ in range(4)]
    probe = FeatureCache(tmp_path / "probe")
    probe.features(backbone, inputs[0], [0])
    size = next((tmp_path / "probe").glob("*/*.pt")).stat().st_size
    cache = FeatureCache(tmp_path / "lru", max_gb=3.5 * size / 2**30)  # room for three files
    for age, x in zip((30, 20, 10), inputs[:3], strict=True):
        cache.features(backbone, x, [0])
        (path,) = (tmp_path / "lru").glob(f"*/{tensor_digest(x).hexdigest()}.pt")
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime - age))  # oldest first
    cache.features(backbone, inputs[0], [0])  # a hit: input 0 is now the most recent
    cache.features(backbone, inputs[3], [0])  # a fourth file: over the limit
    cache.hits = cache.misses = 0
    for i in (0, 3, 1, 2):
        cache.features(backbone, inputs[i], [0])
    # down to 80 % of 3.5 files: the two least recently used (inputs 1 and 2) were deleted
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_bad_size_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="max_gb=0"):
        FeatureCache(tmp_path, max_gb=0)


@pytest.mark.parametrize("name", HEAD_CONFIGS)
def test_every_head_reads_only_the_features_it_names(name: str) -> None:
    """A cached batch has ``None`` for the features no head named (feature_index): each head's
    logits from such a list equal those from the backbone's whole list."""
    cfg = compose_config("train", ["experiment=quickstart", f"model/decode_head={name}"])
    net = build_model(cfg).net.eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    scene = {"zoom": torch.tensor([0.8, 1.3])}
    with torch.no_grad():
        feats = net.backbone(x)
        used = net.feature_indices
        assert used and set(used) <= set(range(len(feats)))
        only = [f if i in used else None for i, f in enumerate(feats)]
        for head in (net.decode_head, *net.auxiliary_head):
            assert torch.equal(net.run_head(head, only, scene), net.run_head(head, feats, scene))


def test_a_run_detaches_its_cache(tmp_path: Path) -> None:
    """The callback attaches the cache for the run only (a saved module never carries one)."""
    from dynaseg.training.feature_cache import FrozenFeatureCache

    cfg = compose_config("train", ["experiment=quickstart"])
    module = build_model(cfg)
    callback = FrozenFeatureCache(tmp_path, max_gb=1)
    callback.setup(None, module, "fit")
    assert module.net.feature_cache is callback.cache
    callback.teardown(None, module, "fit")
    assert module.net.feature_cache is None


def test_a_batch_is_named_by_the_sha256_of_its_layout_and_bytes() -> None:
    import hashlib

    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    expected = hashlib.sha256(repr(((2, 3, 4), (12, 4, 1), "torch.float32")).encode())
    expected.update(x.numpy().tobytes())
    assert tensor_digest(x).hexdigest() == expected.hexdigest()
    # the same values in another layout are another input (strides are part of the key)
    other = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert torch.equal(other, x) and tensor_digest(other).hexdigest() != expected.hexdigest()
    halves = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)  # numpy has no bfloat16
    assert tensor_digest(halves).hexdigest() != tensor_digest(halves.float()).hexdigest()
