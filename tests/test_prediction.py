"""Prediction helpers: input resolution, names, palettes, PNG writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynaseg.palettes import voc_colormap
from dynaseg.run.prediction import (
    NoImagesError,
    label_image,
    overlay_image,
    resolve_inputs,
    unique_names,
)
from helpers import compose_config, tiny_checkpoint


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


def test_readable_images_are_predicted_and_the_rest_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder with a corrupt image, a truncated one and a .txt: the good image is predicted,
    each skipped file gets one line with the reason, and the run ends in one error (exit 1)."""
    from dynaseg.errors import exit_on_user_error
    from dynaseg.run.prediction import NOT_AN_IMAGE, predict

    folder = tmp_path / "imgs"
    (good,) = write_images(folder, ["good.png"])
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / "cut.png")
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:60])
    (folder / "corrupt.jpg").write_bytes(b"not a jpeg at all")
    (folder / "notes.txt").write_text("x")
    (folder / ".hidden").write_text("x")  # hidden files are not inputs
    out = tmp_path / "pred"
    cfg = compose_config(
        "predict",
        [
            f"ckpt_path={tiny_checkpoint(tmp_path / 't.ckpt')}",
            f"inputs={folder}",
            f"output_dir={out}",
            "overlay=false",
            "device=cpu",
        ],
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        exit_on_user_error(lambda: predict(cfg))
    assert exc.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-4] == f"skipped {folder / 'notes.txt'}: {NOT_AN_IMAGE}"
    assert lines[-3].startswith(f"skipped {folder / 'corrupt.jpg'}: cannot identify image file")
    assert lines[-2].startswith(f"skipped {folder / 'cut.png'}: ")
    assert lines[-1] == (
        f"error: 3 of 4 input file(s) skipped (notes.txt, corrupt.jpg, cut.png): listed above and "
        f"in {out / 'predictions.json'}; 1 image(s) predicted"
    )
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "predictions.json"]
    summary = json.loads((out / "predictions.json").read_text())
    assert [r["image"] for r in summary["images"]] == [str(good)]
    assert [s["file"] for s in summary["skipped"]] == [
        str(folder / n) for n in ("notes.txt", "corrupt.jpg", "cut.png")
    ]


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
