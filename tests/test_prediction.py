"""Prediction helpers: input resolution, names, palettes, PNG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynaseg.palettes import voc_colormap
from dynaseg.prediction import (
    NoImagesError,
    label_image,
    overlay_image,
    resolve_inputs,
    unique_names,
)


def write_images(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(folder / n)
        paths.append(folder / n)
    return paths


def test_inputs_from_folder_glob_list_and_file(tmp_path: Path) -> None:
    a, b = write_images(tmp_path / "imgs", ["b.png", "a.jpg"])
    (tmp_path / "imgs" / "readme.md").write_text("x")
    assert resolve_inputs(tmp_path / "imgs") == [b.parent / "a.jpg", b.parent / "b.png"]
    assert resolve_inputs(f"{tmp_path}/imgs/*.png") == [a]
    listing = tmp_path / "list.txt"
    listing.write_text("# two images\nimgs/b.png\n\n" + str(b) + "\n")
    assert resolve_inputs(listing) == [a, b]
    assert resolve_inputs([str(a), str(b)]) == [a, b]


def test_bad_inputs_say_what_was_given(tmp_path: Path) -> None:
    with pytest.raises(NoImagesError, match=r"missing/\*.jpg"):
        resolve_inputs(f"{tmp_path}/missing/*.jpg")
    with pytest.raises(NoImagesError, match="does not exist"):
        resolve_inputs(tmp_path / "nope.png")
    listing = tmp_path / "list.txt"
    listing.write_text("gone.png\n")
    with pytest.raises(NoImagesError, match="listed image 'gone.png' does not exist"):
        resolve_inputs(listing)
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(NoImagesError, match="neither an image"):
        resolve_inputs(tmp_path / "notes.md")


def test_repeated_stems_get_distinct_names() -> None:
    paths = [Path("x/img.png"), Path("y/img.jpg"), Path("z/other.png")]
    assert unique_names(paths) == ["img", "img_1", "other"]


def test_label_png_keeps_indices_and_colours(tmp_path: Path) -> None:
    palette = voc_colormap(12)
    label = np.array([[0, 1, 11], [2, 3, 4]])
    label_image(label, palette).save(tmp_path / "l.png")
    back = Image.open(tmp_path / "l.png")
    assert back.mode == "P" and (np.asarray(back) == label).all()
    assert np.array_equal(np.asarray(back.convert("RGB"))[0, 2], palette[11])
    image = np.full((2, 3, 3), 200, np.uint8)
    side = np.asarray(overlay_image(image, label, palette, opacity=0.5))
    assert side.shape == (2, 6, 3)
    assert side[0, 4].tolist() == [round(0.5 * 200 + 0.5 * 128), 100, 100]
