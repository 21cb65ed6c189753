"""The twelve mmseg model-zoo rows (conf/experiment/mmseg_dmnet_*.yaml) composed from their parts
(conf/experiment_parts/mmseg/): every row composes to mmseg's recipe, an R-101 row is its R-50 row with
the other backbone, and presets state an inference block only where it differs from the default.

The values pinned here are those of the rows before they were split into parts (each row was a
40-line copy), so the split is checked key by key rather than by a digest of the whole config: a
digest would also change with every unrelated default and would not say which value moved.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf

from helpers import CONF_DIR, compose_config

# row suffix: published val mIoU (single scale, ms+flip) of the rows (mmseg model zoo)
PUBLISHED = {
    "cityscapes_512x1024_40k": ((77.78, 79.14), (78.37, 79.72)),
    "cityscapes_512x1024_80k": ((79.07, 80.22), (79.64, 80.67)),
    "cityscapes_769x769_40k": ((78.49, 80.27), (77.62, 78.94)),
    "cityscapes_769x769_80k": ((79.22, 80.55), (79.19, 80.65)),
    "ade20k_512x512_80k": ((42.37, 43.62), (45.34, 46.13)),
    "ade20k_512x512_160k": ((43.15, 44.17), (45.42, 46.76)),
}
# dataset_crop: (dataset class, data config's crop, per-GPU batch, inference)
WHOLE = {
    "mode": "whole",
    "crop_size": None,
    "stride": None,
    "scales": [1.0],
    "flip": False,
    "align_corners": False,
}
SLIDE_769 = {
    "mode": "slide",
    "crop_size": [769, 769],
    "stride": [513, 513],
    "scales": [1.0],
    "flip": False,
    "align_corners": True,
}
DATASETS = {
    "ade20k_512x512": ("ADE20K", [512, 512], 4, WHOLE, "whole"),
    "cityscapes_512x1024": ("Cityscapes", [512, 1024], 2, WHOLE, "whole"),
    "cityscapes_769x769": ("Cityscapes", [769, 769], 2, SLIDE_769, "slide 769/513"),
}
ROWS = [(depth, suffix) for suffix in PUBLISHED for depth in ("r50", "r101")]


def _row(depth: str, suffix: str) -> str:
    return f"mmseg_dmnet_{depth}_d8_{suffix}"


@functools.cache
def _composed(row: str) -> DictConfig:
    """The row's composed config, once per session (read-only: tests copy before changing it)."""
    return compose_config("train", [f"experiment={row}"])


def test_the_rows_are_the_twelve_presets() -> None:
    presets = {p.stem for p in (CONF_DIR / "experiment").glob("mmseg_dmnet_*.yaml")}
    assert presets == {_row(depth, suffix) for depth, suffix in ROWS}


@pytest.mark.parametrize(("depth", "suffix"), ROWS)
def test_row_composes_to_the_mmseg_recipe(depth: str, suffix: str) -> None:
    cfg = _composed(_row(depth, suffix))
    assert not OmegaConf.missing_keys(cfg.manifest)  # every ??? of the shared part is filled
    dataset_crop, steps = suffix.rsplit("_", 1)
    dataset, crop, batch, inference, evaluation = DATASETS[dataset_crop]
    steps = int(steps.removesuffix("k")) * 1000
    single, ms_flip = PUBLISHED[suffix][depth == "r101"]
    name = "R-50-D8" if depth == "r50" else "R-101-D8"
    pretty = {"ade20k": "ADE20K", "cityscapes": "Cityscapes"}[dataset_crop.split("_")[0]]
    size = dataset_crop.split("_")[1]

    assert cfg.tags == ["paper", "mmseg", "dmnet", dataset_crop.split("_")[0]]
    net = cfg.model.net
    assert net.backbone.name == f"resnet{depth[1:]}c" and net.backbone.pretrained is True
    assert net.backbone.output_stride == 8
    assert net.decode_head._target_.endswith("DMHead") and list(net.decode_head.filter_sizes) == [
        1,
        3,
        5,
        7,
    ]
    # the auxiliary stage role: layer3 (index 3) on a ResNet (test_backbones.py)
    assert net.auxiliary_head.in_index == "auxiliary" and cfg.model.aux_loss_weight == 0.4
    assert (cfg.model.optimizer.lr, cfg.model.optimizer.weight_decay) == (0.01, 5e-4)
    assert (cfg.model.scheduler.power, cfg.model.scheduler.min_lr) == (0.9, 1e-4)
    assert OmegaConf.to_container(cfg.model.inference) == inference
    assert cfg.data.dataset._target_ == f"dynaseg.data.datasets.{dataset}"
    assert list(cfg.data.crop_size) == crop and cfg.data.batch_size == batch
    trainer = cfg.trainer
    assert (trainer.strategy, trainer.devices, trainer.sync_batchnorm) == ("ddp", 4, True)
    assert (trainer.max_steps, trainer.val_check_interval) == (steps, steps // 10)
    assert OmegaConf.to_container(cfg.manifest) == {
        "paper": f"mmseg DMNet {name} {pretty} {size} {steps // 1000}k",
        "global_batch": 4 * batch,
        "gpus": 4,
        "nodes": 1,
        "max_steps": steps,
        "lr": 0.01,
        "published": {
            "mIoU": single,
            "mIoU_ms_flip": ms_flip,
            "eval": f"{evaluation}; ms+flip: scales 0.5-1.75 + flip",
        },
    }


@pytest.mark.parametrize("suffix", sorted(PUBLISHED))
def test_r101_row_is_the_r50_row_with_the_deeper_backbone(suffix: str) -> None:
    """mmseg writes each R-101 row as its R-50 row plus ``depth=101``: here everything but the
    backbone name and the manifest's paper name and published numbers is the same."""
    r50, r101 = (
        OmegaConf.to_container(_composed(_row(depth, suffix))) for depth in ("r50", "r101")
    )
    for cfg in (r50, r101):
        cfg["model"]["net"]["backbone"].pop("name")
        for key in ("paper", "published"):
            cfg["manifest"].pop(key)
    assert r50 == r101


INFERENCE_DEFAULT = yaml.safe_load((CONF_DIR / "model/module/segmentation.yaml").read_text())[
    "inference"
]


@pytest.mark.parametrize(
    "path",
    sorted(
        [
            *(CONF_DIR / "experiment").rglob("*.yaml"),
            *(CONF_DIR / "experiment_parts").rglob("*.yaml"),
        ]
    ),
    ids=lambda p: p.stem,
)
def test_presets_state_inference_only_where_it_differs_from_the_default(path: Path) -> None:
    preset = yaml.safe_load(path.read_text()) or {}
    stated = (preset.get("model") or {}).get("inference") or {}
    same = {key: value for key, value in stated.items() if INFERENCE_DEFAULT.get(key) == value}
    assert not same, f"{path.name} restates the default inference values {same}"
