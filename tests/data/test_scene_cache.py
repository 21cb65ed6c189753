"""Generated scenes are kept in memory and on disk (dynaseg.data.scene_cache) without changing a
byte of them."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dynaseg.data.datasets.synthetic import SyntheticScenes
from dynaseg.data.datasets.synthetic_scales import SyntheticScaleScenes

N = 6


def scenes(ds: SyntheticScenes) -> list[tuple[np.ndarray, np.ndarray]]:
    return [ds.load(i) for i in range(len(ds))]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (img_a, lab_a), (img_b, lab_b) in zip(a, b, strict=True):
        assert img_a.dtype == img_b.dtype == np.uint8 and lab_a.dtype == lab_b.dtype == np.uint8
        assert img_a.flags.c_contiguous and lab_a.flags.c_contiguous
        assert np.array_equal(img_a, img_b) and np.array_equal(lab_a, lab_b)


@pytest.mark.parametrize("cls", [SyntheticScenes, SyntheticScaleScenes])
def test_cached_scenes_are_the_generators_bytes(cls, tmp_path) -> None:
    size = (48, 40)
    generated = [cls("val", eval_length=N, size=size).render(i) for i in range(N)]
    in_memory = cls("val", eval_length=N, size=size)
    assert_same(scenes(in_memory), generated)
    assert_same(scenes(in_memory), generated)  # second pass: from memory
    assert len(in_memory.cache.memory) == N

    writer = cls("val", eval_length=N, size=size, cache_dir=tmp_path, memory_cache_mb=0)
    assert_same(scenes(writer), generated)
    (directory,) = tmp_path.iterdir()
    files = sorted(p.name for p in (directory / "val").iterdir())
    assert files == [f"{i:07d}.npy" for i in range(N)]
    key = json.loads((directory / "key.json").read_text())
    assert key["size"] == list(size) and key["seed"] == 0 and key["class"].endswith(cls.__name__)

    reader = cls("val", eval_length=N, size=size, cache_dir=tmp_path, memory_cache_mb=0)
    reader.render = None  # type: ignore[method-assign]  # must not generate: read from disk
    assert_same(scenes(reader), generated)


def test_returned_scenes_are_copies() -> None:
    ds = SyntheticScenes("train", length=2, size=(32, 32))
    image, label = ds.load(1)
    image[:] = 0
    label[:] = 255
    again_image, again_label = ds.load(1)
    fresh_image, fresh_label = ds.render(1)
    assert np.array_equal(again_image, fresh_image) and np.array_equal(again_label, fresh_label)


def test_cache_key_follows_the_generator_arguments(tmp_path) -> None:
    def directory(**kwargs: object) -> str:
        args = {"length": 1, "size": (32, 32), **kwargs}
        return str(SyntheticScaleScenes("train", cache_dir=tmp_path, **args).cache.directory)

    base = directory()
    assert directory() == base
    assert directory(seed=1) != base
    assert directory(zoom_range=[1, 1]) != base
    assert directory(noise_std=10.0) != base
    assert directory(length=5) == base  # the length only bounds the index
    train = SyntheticScenes("train", length=1, size=(32, 32), cache_dir=tmp_path)
    assert str(train.cache.directory) != base  # another generator


def test_a_torn_or_foreign_file_is_generated_again(tmp_path) -> None:
    ds = SyntheticScenes("val", eval_length=2, size=(32, 32), cache_dir=tmp_path)
    expected = [ds.render(i) for i in range(2)]
    scenes(ds)
    (tmp_path / next(iter(os.listdir(tmp_path))) / "val" / "0000000.npy").write_bytes(b"torn")
    np.save(ds.cache.directory / "0000001.npy", np.zeros((8, 8, 4), np.uint8))
    fresh = SyntheticScenes("val", eval_length=2, size=(32, 32), cache_dir=tmp_path)
    assert_same(scenes(fresh), expected)
    assert np.load(ds.cache.directory / "0000000.npy").shape == (32, 32, 4)  # rewritten


def test_memory_cache_stops_at_its_limit() -> None:
    scene_mb = 32 * 32 * 4 / 2**20
    ds = SyntheticScenes("train", length=5, size=(32, 32), memory_cache_mb=2.5 * scene_mb)
    scenes(ds)
    assert sorted(ds.cache.memory) == [0, 1]
    none = SyntheticScenes("train", length=5, size=(32, 32), memory_cache_mb=0)
    scenes(none)
    assert none.cache.memory == {}


def test_unwritable_cache_dir_warns_once_and_still_gives_the_scenes(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ds = SyntheticScenes("val", eval_length=3, size=(32, 32), cache_dir=blocker)
    with pytest.warns(UserWarning, match="scene cache: cannot write under"):
        got = scenes(ds)
    assert_same(got, [ds.render(i) for i in range(3)])
    assert ds.cache.directory is None
