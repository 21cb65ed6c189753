"""The SAC, DSNet and CaC-Net paper presets (conf/experiment/) state their paper's recipe.

Each row pins what the paper's implementation details say: global batch, LR, schedule, crop and
augmentation (docs/fidelity.md lists the sources and the choices where a paper is silent).
"""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from helpers import compose_config

POLY_TO_ZERO = {"name": "poly", "power": 0.9, "min_lr": 0.0}
SAC_STEP = {"name": "step", "milestone_epochs": [60], "gamma": 0.1}
FLIP_AND_SCALE_ONLY = {"photometric": False, "cat_max_ratio": 1.0}

# preset: (dataset, global batch, lr, weight decay, schedule, steps | epochs, crop, scale range,
#          auxiliary head, backbone)
PRESETS = {
    "sac_r101_cityscapes": ("Cityscapes", 8, 5e-4, 1e-4, SAC_STEP, ("epochs", 70), [500, 500],
                            [0.5, 1.5], False, "resnet101.tv_in1k"),
    "sac_r101_ade20k": ("ADE20K", 8, 5e-4, 1e-4, SAC_STEP, ("epochs", 70), [500, 500],
                        [0.5, 1.5], False, "resnet101.tv_in1k"),
    "dsnet_r101_voc_aug": ("VOCAug", 32, 0.01, 1e-4, POLY_TO_ZERO, ("steps", 26455), [512, 512],
                           [0.5, 2.0], True, "resnet101c"),
    "dsnet_r101_ade20k": ("ADE20K", 24, 0.01, 1e-4, POLY_TO_ZERO, ("steps", 126313), [576, 576],
                          [0.5, 2.0], True, "resnet101c"),
    "dsnet_r101_pascal_context": ("PascalContext", 32, 0.005, 1e-4, POLY_TO_ZERO,
                                  ("steps", 12495), [512, 512], [0.5, 2.0], True, "resnet101c"),
    "cacnet_r101_ade20k": ("ADE20K", 16, 0.004, 1e-4, POLY_TO_ZERO, ("steps", 227363),
                           [576, 576], [0.5, 2.0], True, "resnet101c"),
    "cacnet_r50_pascal_context": ("PascalContext", 16, 0.001, 1e-4, POLY_TO_ZERO,
                                  ("steps", 37485), [512, 512], [0.5, 2.0], True, "resnet50c"),
    "cacnet_r101_voc_aug": ("VOCAug", 16, 0.002, 1e-4, POLY_TO_ZERO, ("steps", 52910),
                            [512, 512], [0.5, 2.0], True, "resnet101c"),
}  # fmt: skip

# images per training epoch and the epoch counts the papers give (steps = epochs × images / batch)
EPOCHS = {
    "dsnet_r101_voc_aug": (10_582, 80),
    "dsnet_r101_ade20k": (20_210, 150),
    "dsnet_r101_pascal_context": (4_998, 80),
    "cacnet_r101_ade20k": (20_210, 180),
    "cacnet_r50_pascal_context": (4_998, 120),
    "cacnet_r101_voc_aug": (10_582, 80),
}
INFERENCE_KEYS = {"mode", "crop_size", "stride", "scales", "flip", "align_corners"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_states_its_papers_recipe(preset: str) -> None:
    dataset, batch, lr, wd, schedule, length, crop, scales, aux, backbone = PRESETS[preset]
    cfg = compose_config("train", [f"experiment={preset}"])
    model, data, trainer = cfg.model, cfg.data, cfg.trainer
    assert data.dataset._target_ == f"dynaseg.data.datasets.{dataset}"
    global_batch = trainer.devices * trainer.get("num_nodes", 1) * data.batch_size
    assert global_batch == batch == cfg.manifest.global_batch
    assert cfg.manifest.gpus == trainer.devices and cfg.manifest.nodes == 1
    assert model.optimizer.lr == lr == cfg.manifest.lr
    assert model.optimizer.momentum == 0.9 and model.optimizer.weight_decay == wd
    assert OmegaConf.to_container(model.scheduler) == schedule
    unit, count = length
    if unit == "epochs":
        assert trainer.max_epochs == count and trainer.max_steps == -1
    else:
        assert trainer.max_steps == count == cfg.manifest.max_steps
        images, epochs = EPOCHS[preset]
        assert count == math.ceil(images * epochs / batch)
    assert list(data.crop_size) == crop and list(data.ratio_range) == scales
    assert {k: data[k] for k in FLIP_AND_SCALE_ONLY} == FLIP_AND_SCALE_ONLY
    assert (model.net.auxiliary_head is not None) == aux
    assert model.net.backbone.name == backbone and model.net.backbone.pretrained is True
    assert set(model.inference) == INFERENCE_KEYS
    assert model.inference.mode == "whole" and list(model.inference.scales) == [1.0]
    assert "paper" in cfg.manifest and cfg.tags[0] == "paper"


def test_sac_preset_is_the_papers_single_layout_and_step_count() -> None:
    cfg = compose_config("train", ["experiment=sac_r101_cityscapes"])
    head = cfg.model.net.decode_head
    assert (head.layout, head.num_convs, head.dropout_ratio) == ("sac_classifier", 0, 0.0)
    # 70 epochs of the per-GPU loader: the distributed sampler pads the images to a multiple of
    # the 4 GPUs, each GPU drops its last partial batch of 2
    for preset, images in (("sac_r101_cityscapes", 2975), ("sac_r101_ade20k", 20_210)):
        cfg = compose_config("train", [f"experiment={preset}"])
        per_gpu = math.ceil(images / cfg.trainer.devices)
        assert cfg.manifest.max_steps == (per_gpu // cfg.data.batch_size) * 70


def test_dsnet_presets_use_the_deeplabv3plus_aspp() -> None:
    cfg = compose_config("train", ["experiment=dsnet_r101_voc_aug"])
    head = cfg.model.net.decode_head
    assert (head.aspp_channels, head.aspp_fuse_kernel_size) == (256, 1)
    assert OmegaConf.to_container(cfg.model.lr_mult) == {"decode_head": 0.1, "auxiliary_head": 0.1}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_network_builds_and_runs(preset: str) -> None:
    """The preset's head and recipe build (on the tiny backbone; model.inference is set aside
    until SegmentationModule reads it)."""
    import torch

    from dynaseg.run.recipes import build_model

    overrides = [f"experiment={preset}", "model/backbone=resnet_tiny", "~model.inference",
                 "model.net.backbone.name=resnet18", "model.net.backbone.pretrained=false"]  # fmt: skip
    module = build_model(compose_config("train", overrides))
    module.eval()
    with torch.no_grad():
        logits = module(torch.randn(1, 3, 64, 64))
    assert logits.shape[-2:] == (64, 64) and logits.shape[1] == module.hparams.num_classes
