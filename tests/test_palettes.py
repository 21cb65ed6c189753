"""dynaseg.palettes: one palette per run, one fallback, and the same colours in predicted PNGs,
notebook figures and logged images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lightning.pytorch.utilities.parsing import AttributeDict
from PIL import Image

from dynaseg import visualization as vis
from dynaseg.data.datasets.synthetic import SyntheticScenes
from dynaseg.data.datasets.voc import VOCAug
from dynaseg.errors import ConfigError
from dynaseg.palettes import colorize, indexed_image, model_palette, overlay, palette_array
from dynaseg.run.checkpoints import load_module, save_module
from dynaseg.run.prediction import predict
from dynaseg.run.recipes import build_model
from helpers import TINY, compose_config

PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_colorize_uses_the_palette_and_blacks_out_ignored_pixels() -> None:
    label = np.array([[0, 1], [2, 255]])
    rgb = colorize(label, PALETTE)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[1, 0].tolist() == [0, 0, 255]
    assert rgb[1, 1].tolist() == [0, 0, 0]
    image = np.full((2, 2, 3), 100, np.uint8)
    blended = overlay(image, label, PALETTE, alpha=0.5)
    assert blended[1, 1].tolist() == [100, 100, 100]  # ignored: the image itself
    assert blended[0, 0].tolist() == [178, 50, 50]  # (100 + 255) / 2 rounded, 100 / 2


def test_indexed_image_keeps_the_indices_and_carries_the_palette(tmp_path: Path) -> None:
    label = np.array([[0, 1], [2, 255]])
    indexed_image(label, PALETTE).save(tmp_path / "label.png")
    with Image.open(tmp_path / "label.png") as back:
        assert back.mode == "P" and np.asarray(back).tolist() == label.tolist()
        assert back.getpalette() == [v for c in PALETTE for v in c] + [0] * (3 * 253)
    with pytest.raises(ConfigError, match="at most 256 colours, got 257"):
        indexed_image(label, [(0, 0, 0)] * 257)


def test_one_fallback_the_voc_colour_map() -> None:
    auto = palette_array(None, 21)
    assert len({tuple(c) for c in auto}) == 21
    assert auto[1].tolist() == [128, 0, 0] and auto[20].tolist() == [0, 64, 128]
    assert [tuple(c) for c in auto] == list(VOCAug.PALETTE)  # the same map, written once


class FakeModel:
    def __init__(self, **hparams) -> None:
        self.hparams = AttributeDict(hparams)


def test_palette_from_checkpoint_then_dataset_class_then_generated() -> None:
    own = [[1, 2, 3]] * 10
    assert model_palette(FakeModel(num_classes=10, palette=own), SyntheticScenes) == (
        [(1, 2, 3)] * 10,
        "checkpoint",
    )
    # older checkpoints carry no palette: the dataset class's colours (class or instance)
    palette, source = model_palette(FakeModel(num_classes=10), SyntheticScenes)
    assert palette == list(SyntheticScenes.PALETTE) and source.endswith("SyntheticScenes")
    instance = SyntheticScenes("val", size=(8, 8), eval_length=1)
    assert model_palette(FakeModel(num_classes=10), instance) == (palette, source)
    # a class count the dataset does not have: the VOC colour map
    palette, source = model_palette(FakeModel(num_classes=3), SyntheticScenes)
    assert palette == [(0, 0, 0), (128, 0, 0), (0, 128, 0)] and source.startswith("generated")


@pytest.mark.parametrize("stored_palette", [True, False], ids=["palette", "no-palette"])
def test_predicted_pngs_and_notebook_figures_agree_pixel_for_pixel(
    tmp_path: Path, stored_palette: bool
) -> None:
    """One checkpoint, the same labels: ``src/predict.py``'s PNGs and the notebook's figure
    (palette from :func:`model_palette` of the loaded run, :func:`vis.plot_predictions`) hold the
    same colours, with and without a palette stored in the checkpoint."""
    module = build_model(compose_config("train", TINY))
    if not stored_palette:  # a checkpoint from before palettes were stored
        module.hparams["palette"] = None
    ckpt = save_module(module, tmp_path / "tiny.ckpt")
    dataset = SyntheticScenes("val", size=(40, 56), eval_length=2)
    image = dataset.load(1)[0]
    Image.fromarray(image).save(tmp_path / "scene.png")

    out = tmp_path / "pred"
    cfg = compose_config(
        "predict", [f"ckpt_path={ckpt}", f"inputs={tmp_path / 'scene.png'}", f"output_dir={out}"]
    )
    predict(cfg)
    label_png = Image.open(out / "scene.png")
    label = np.asarray(label_png)
    overlay_png = np.asarray(Image.open(out / "scene_overlay.png"))

    model = load_module(ckpt)  # what the notebook does, with the run's dataset
    palette, source = model_palette(model, dataset)
    assert source == (
        "checkpoint" if stored_palette else "dynaseg.data.datasets.synthetic.SyntheticScenes"
    )
    assert np.array_equal(np.asarray(label_png.convert("RGB")), colorize(label, palette))
    fig = vis.plot_predictions(
        [image], [label], [label], list(model.hparams.class_names), palette, alpha=0.5
    )
    drawn = fig.axes[2].get_images()[0].get_array()  # the prediction panel
    assert np.array_equal(np.asarray(drawn), overlay_png[:, image.shape[1] :])
