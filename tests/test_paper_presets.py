"""The SAC, DSNet, CaC-Net and DMNet paper presets (conf/experiment/) state their paper's recipe.

Each preset composes the recipe its paper declares in tests/paper_recipes.py (global batch, LR,
schedule, crop and augmentation, deep supervision, backbone, test scales; docs/fidelity.md lists
the sources and the choices where a paper is silent); the table sweeps are checked against the
same declarations by tests/test_composed_recipes.py.
"""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from helpers import compose_config, experiment_overrides
from paper_recipes import PRESETS, expected_recipe, recipe_differences, recipe_of

# images per training epoch and the epoch counts the papers give (steps = epochs × images / batch)
EPOCHS = {
    "dsnet_r101_voc_aug": (10_582, 80),
    "dsnet_r101_ade20k": (20_210, 150),
    "dsnet_r101_pascal_context": (4_998, 80),
    "cacnet_r101_ade20k": (20_210, 180),
    "cacnet_r50_pascal_context": (4_998, 120),
    "cacnet_r101_voc_aug": (10_582, 80),
    "dmnet_r50_voc_aug": (10_582, 80),
    "dmnet_r101_pascal_context": (4_998, 80),
    "dmnet_r101_ade20k": (20_210, 120),
    "dmnet_r101_voc_aug": (10_582, 80),
    "dmnet_r101_voc_trainval_ft": (2_913, 80),  # VOC 2012 train+val
    "dsnet_r101_voc_trainval_ft": (2_913, 80),
    "cacnet_r101_voc_trainval_ft": (2_913, 80),
}
INFERENCE_KEYS = {"mode", "crop_size", "stride", "scales", "flip", "align_corners"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_states_its_papers_recipe(preset: str) -> None:
    paper, dataset, fixed = PRESETS[preset]
    expected = expected_recipe(paper, dataset, fixed)
    cfg = compose_config("train", experiment_overrides(preset))
    assert recipe_differences(recipe_of(cfg), expected) == {}
    assert cfg.manifest.global_batch == expected["global_batch"]
    assert cfg.manifest.gpus == cfg.trainer.devices and cfg.manifest.nodes == 1
    assert cfg.manifest.lr == expected["optimizer"]["lr"]
    unit, count = expected["length"]
    if unit == "epochs":
        assert cfg.trainer.max_steps == -1
    else:
        assert cfg.manifest.max_steps == count
        images, epochs = EPOCHS[preset]
        assert count == math.ceil(images * epochs / expected["global_batch"])
    assert set(cfg.model.inference) == INFERENCE_KEYS
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


# one preset per network: DMNet's head builds in tests/models/test_dmnet.py; the test-server
# stages (*_ft, *_test) are their first stages' networks
BUILDS = sorted(
    p for p in PRESETS if not p.startswith("dmnet") and not p.endswith(("_ft", "_test"))
)


@pytest.mark.parametrize("preset", BUILDS)
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
