"""The pre-flight data check (dynaseg.data.preflight) on fixtures in the datasets' real formats."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynaseg.data.datamodule import SegDataModule, rescaled_size
from dynaseg.data.datasets import ADE20K, SyntheticScenes
from dynaseg.data.datasets.files import FileSegDataset, read_image
from dynaseg.data.preflight import check_split, interactive, preflight
from dynaseg.errors import DatasetError
from fixtures_real import SIZE, write_ade20k


def half_truncated_jpeg(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def ade(tmp_path: Path) -> Path:
    return write_ade20k(tmp_path, n_train=6, n_val=2)["root"]


def test_truncated_jpeg_is_found_by_the_check_and_by_loading(ade: Path) -> None:
    jpg = ade / "images" / "training" / "ADE_train_00000003.jpg"
    half_truncated_jpeg(jpg)
    ds = ADE20K(ade, "train")
    report = check_split(ds, progress=False)
    assert report.bad_indices == [2]
    (message,) = report.problems["truncated"]
    assert (
        message == f"image file {jpg} is truncated ({jpg.stat().st_size} bytes, no JPEG end marker)"
    )
    with pytest.raises(DatasetError, match="ADE_train_00000003.jpg is truncated"):
        read_image(jpg)  # training fails loudly too, instead of a grey half


def test_formats_rgba_16bit_and_greyscale(ade: Path) -> None:
    images = ade / "images" / "training"
    rgba = np.zeros((*SIZE, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(images / "ADE_train_00000099.png")  # wrong extension
    Image.fromarray(np.zeros(SIZE, np.uint16)).save(images / "grey16.jpg.png")
    jpg16 = images / "ADE_train_00000004.jpg"
    Image.fromarray(np.full(SIZE, 1000, np.uint16)).save(jpg16.with_suffix(".tmp.png"))
    jpg16.unlink()
    jpg16.with_suffix(".tmp.png").rename(jpg16)  # a 16-bit PNG under a .jpg name
    Image.fromarray(np.full(SIZE, 90, np.uint8), "L").save(images / "ADE_train_00000005.jpg")
    ds = ADE20K(ade, "train", strict=False)
    report = check_split(ds, progress=False)
    unexpected = report.problems["unexpected_file"]
    assert any("ADE_train_00000099.png is not a .jpg image" in m for m in unexpected)
    assert any("grey16.jpg.png is not a .jpg image" in m for m in unexpected)
    (bad16,) = report.problems["bad_format"]
    assert f"image file {jpg16} is a I;16 PNG image; expected 8-bit RGB or greyscale" in bad16
    assert report.bad_indices == [3]  # greyscale ADE_train_00000005 is fine (read as grey RGB)
    assert read_image(images / "ADE_train_00000005.jpg").shape == (*SIZE, 3)


def test_fail_fast_lists_the_files_and_skip_drops_them(ade: Path, tmp_path: Path) -> None:
    half_truncated_jpeg(ade / "images" / "training" / "ADE_train_00000001.jpg")
    bad = np.asarray(Image.open(ade / "annotations/training/ADE_train_00000006.png")).copy()
    bad[3, 3] = 201
    Image.fromarray(bad).save(ade / "annotations/training/ADE_train_00000006.png")
    (ade / "annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(DatasetError) as err:
        preflight(ADE20K(ade, "train", strict=False), "error", tmp_path / "cache")
    text = str(err.value)
    assert text.startswith("ADE20K split 'train' under ")
    assert "3 bad sample file(s) found before training" in text
    for name in ("ADE_train_00000001.jpg", "ADE_train_00000002.png", "ADE_train_00000006.png"):
        assert name in text
    assert text.endswith("train without them: data.on_bad_sample=skip")

    ds = ADE20K(ade, "train", strict=False)
    report = preflight(ds, "skip", tmp_path / "cache")
    assert report.n_problems == 3
    assert [s.name for s in ds.samples] == [f"ADE_train_0000000{i}" for i in (3, 4, 5)]
    for i in range(len(ds)):
        ds.load(i)  # what is left loads


def test_results_are_cached_by_size_and_mtime(
    ade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = FileSegDataset.inspect
    monkeypatch.setattr(FileSegDataset, "inspect", lambda s, i: calls.append(i) or original(s, i))
    cache = tmp_path / "cache"
    first = check_split(ADE20K(ade, "train"), cache_dir=cache, progress=False)
    assert sorted(calls) == list(range(6))
    calls.clear()
    again = check_split(ADE20K(ade, "train"), cache_dir=cache, progress=False)
    assert calls == [] and np.array_equal(again.class_counts, first.class_counts)
    half_truncated_jpeg(ade / "images" / "training" / "ADE_train_00000004.jpg")
    changed = check_split(ADE20K(ade, "train"), cache_dir=cache, progress=False)
    assert calls == [3] and changed.bad_indices == [3]


def test_crop_larger_than_the_images_warns_once_with_the_sizes(tmp_path: Path) -> None:
    assert rescaled_size((160, 160), (2048, 512)) == (512, 512)
    assert rescaled_size((512, 683), (2048, 512)) == (512, 683)  # ADE20K-like: short side 512
    assert rescaled_size((36, 48), (80, 80)) == (60, 80)  # long side fits 80
    factory = functools.partial(SyntheticScenes, size=[80, 80], length=4, eval_length=2)
    dm = SegDataModule(
        factory, crop_size=(512, 512), scale=(80, 80), test_scale=None, num_workers=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    texts = [str(w.message) for w in caught if "crop_size" in str(w.message)]
    assert texts == [
        "data.crop_size=[512, 512] is larger than the training images after rescaling: 80×80 "
        "(w×h, median of 1) → 80×80 at data.scale=[80, 80]; every crop is padded. Expected a "
        "crop within 80×80: lower data.crop_size or raise data.scale"
    ]
    dm = SegDataModule(factory, crop_size=(64, 64), scale=(80, 80), test_scale=None, num_workers=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    assert not [w for w in caught if "crop_size" in str(w.message)]


def test_progress_bars_only_on_a_terminal_and_never_from_library_setup(
    ade: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dm.setup()`` in a notebook or a test prints no progress bar, even on a terminal; an
    entry point shows one on a terminal (``progress_bars``) and never in a log file."""
    factory = functools.partial(ADE20K, root=ade)

    def setup_output(progress_bars: bool | None, tty: bool) -> str:
        dm = SegDataModule(factory, crop_size=(32, 32), scale=(64, 48), num_workers=0)
        dm.preflight_cache_dir = tmp_path / f"cache-{progress_bars}-{tty}"  # checked afresh
        if progress_bars is not None:
            dm.progress_bars = progress_bars
        capsys.readouterr()
        monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
        dm.setup("fit")
        return capsys.readouterr().err

    assert interactive() is False  # pytest's captured stderr: what a log file is
    assert "\r" not in setup_output(None, tty=True)  # library use: never
    assert "\r" not in setup_output(None, tty=False)
    assert "checking train data" in setup_output(True, tty=True)  # the entry point on a terminal
    assert interactive() is True  # stderr a terminal (patched above)
