"""Issue 31: test-server submission files (mmseg's format_only) from ``src/predict.py server=...``.

A prediction run with each server preset (conf/server/) on the dataset fixtures in their real
layout writes a zip whose PNGs are named and encoded as the server takes them: Cityscapes label
ids, VOC 2012's palette PNGs under results/VOC2012/Segmentation/comp6_test_cls/, ADE20K ids 1-150.
The model is a tiny checkpoint whose classifier predicts one known class everywhere, so each
archive's pixels must be exactly that class in the server's ids.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynaseg.data.datasets import ADE20K, Cityscapes, VOCAug
from dynaseg.data.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID
from dynaseg.errors import ConfigError, UserError
from dynaseg.palettes import voc_colormap
from dynaseg.run.prediction import SUBMISSION_FORMATS, predict
from dynaseg.training.module import SegmentationModule
from fixtures_real import SIZE, write_ade20k_test, write_cityscapes, write_voc, write_voc_test
from helpers import NARROW, compose_config, tiny_checkpoint

# server -> (dataset, the class the model predicts, its id in the server's files, archive names)
SERVERS = {
    "cityscapes": (Cityscapes, 18, 33, ["berlin_000000_000019_leftImg8bit.png"]),  # bicycle
    "voc2012": (
        VOCAug, 15, 15,  # person
        [f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in ("2008_000001", "2010_000005")],
    ),
    "ade20k": (ADE20K, 149, 150, ["ADE_test_00000001.png", "ADE_test_00000002.png"]),  # flag
}  # fmt: skip


def predicting(index: int) -> Callable[[SegmentationModule], None]:
    """Make the classifier's logits constant with class ``index`` highest."""

    def edit(module: SegmentationModule) -> None:
        conv = module.net.decode_head.conv_seg
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.fill_(-1.0)
            conv.bias[index] = 1.0

    return edit


def write_test_images(server: str, data_dir: Path) -> None:
    if server == "cityscapes":
        write_cityscapes(data_dir)  # its test split: berlin_000000_000019
    elif server == "voc2012":
        write_voc(data_dir)  # train/val images beside the test ones: only test.txt's are taken
        write_voc_test(data_dir)
    else:
        write_ade20k_test(data_dir)


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_server_preset_writes_an_archive_of_the_servers_label_ids(
    server: str, tmp_path: Path
) -> None:
    dataset, index, server_id, names = SERVERS[server]
    data_dir = tmp_path / "data"
    write_test_images(server, data_dir)
    ckpt = tiny_checkpoint(tmp_path / "t.ckpt", NARROW, dataset=dataset, edit=predicting(index))
    out = tmp_path / "pred"
    cfg = compose_config(
        "predict",
        [f"server={server}", f"ckpt_path={ckpt}", f"paths.data_dir={data_dir}",
         f"output_dir={out}", "device=cpu", "data.test_scale=[64,64]"],
    )  # fmt: skip
    predict(cfg)
    archive = tmp_path / "pred.zip"
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["submission"] == {"format": server, "archive": str(archive), "files": len(names)}
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == sorted(names)
        for name in names:
            png = Image.open(io.BytesIO(zf.read(name)))
            values = np.asarray(png)
            assert values.shape == SIZE and (values == server_id).all(), name
            if server == "voc2012":  # an indexed PNG in the VOC colour map
                assert png.mode == "P"
                assert png.getpalette()[3 * server_id : 3 * server_id + 3] == list(
                    voc_colormap(21)[15]
                )
            else:
                assert png.mode == "L"
    assert not list(out.rglob("*_overlay.png"))  # the server's files only


def test_encodings_round_trip_every_class() -> None:
    """Every predicted index maps to the server's id and back (Cityscapes: train id -> label id,
    the dataset's own label-id -> train-id table inverts it; ADE20K: index + 1; VOC: itself)."""
    city = np.asarray(SUBMISSION_FORMATS["cityscapes"].encode(np.arange(19)[None]))[0]
    assert city.tolist() == [
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    ]
    assert [LABEL_ID_TO_TRAIN_ID[int(i)] for i in city] == list(range(19))
    ade = np.asarray(SUBMISSION_FORMATS["ade20k"].encode(np.arange(150)[None]))[0]
    assert ade.tolist() == list(range(1, 151))
    voc = SUBMISSION_FORMATS["voc2012"].encode(np.arange(21)[None])
    assert np.asarray(voc)[0].tolist() == list(range(21))


def test_the_model_and_the_images_must_fit_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_cityscapes(data_dir)
    ckpt = tiny_checkpoint(tmp_path / "t.ckpt", NARROW, dataset=VOCAug)
    base = [f"ckpt_path={ckpt}", f"paths.data_dir={data_dir}", "device=cpu"]
    with pytest.raises(ConfigError, match="predicts 21 classes; the cityscapes server takes 19"):
        predict(compose_config("predict", ["server=cityscapes", *base]))
    images = data_dir / "cityscapes/leftImg8bit/val/frankfurt"
    renamed = tmp_path / "renamed" / "frankfurt_000000.png"
    renamed.parent.mkdir()
    renamed.write_bytes(next(images.iterdir()).read_bytes())
    city = tiny_checkpoint(tmp_path / "c.ckpt", NARROW, dataset=Cityscapes)
    cfg = compose_config(
        "predict", ["server=cityscapes", f"ckpt_path={city}", f"inputs={renamed.parent}", *base[1:]]
    )
    with pytest.raises(UserError, match="not named <city>_<seq>_<frame>_leftImg8bit.png"):
        predict(cfg)
