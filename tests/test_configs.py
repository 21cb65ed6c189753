"""Every config composes, and the paper configuration is what `model=dmnet data=ade20k` shows."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers import CONF_DIR, ROOT, TINY, compose_config

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_data_config_composes(model: str, data: str) -> None:
    cfg = compose_config("train", [f"model={model}", f"data={data}"])
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    assert resolved["num_classes"] == cfg.data.num_classes
    assert resolved["net"]["decode_head"]["num_classes"] == cfg.data.num_classes
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment: str) -> None:
    cfg = compose_config("train", [f"experiment={experiment}"])
    OmegaConf.to_container(cfg.model, resolve=True)


def test_paper_dmnet_configuration_on_ade20k() -> None:
    cfg = compose_config("train", ["model=dmnet", "data=ade20k"])
    net = cfg.model.net
    assert net.backbone.name == "resnet50c" and net.backbone.output_stride == 8
    assert list(net.decode_head.filter_sizes) == [1, 3, 5, 7]
    assert net.decode_head.channels == 512 and net.decode_head.in_index == 4
    assert net.auxiliary_head.in_index == 3 and net.auxiliary_head.channels == 256
    assert cfg.model.aux_loss_weight == 0.4
    assert cfg.model.optimizer._target_ == "torch.optim.SGD"
    assert cfg.model.optimizer.lr == 0.01 and cfg.model.optimizer.momentum == 0.9
    assert cfg.model.scheduler.power == 0.9 and cfg.model.scheduler.min_lr == 1e-4
    assert cfg.data.num_classes == 150 and cfg.trainer.max_steps == 80000


def test_cfg_job_prints_the_paper_configuration() -> None:
    out = subprocess.run(
        [sys.executable, "src/train.py", "model=dmnet", "data=ade20k", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    cfg = OmegaConf.create(out)
    assert cfg.model.net.backbone.name == "resnet50c"
    assert list(cfg.model.net.decode_head.filter_sizes) == [1, 3, 5, 7]
    assert cfg.model.aux_loss_weight == 0.4 and cfg.model.optimizer.lr == 0.01


def test_paper_backbone_builds_resnet50_d8_offline() -> None:
    cfg = compose_config("train", ["model=dmnet"])
    backbone = instantiate(cfg.model.net.backbone)
    assert backbone.channels == [64, 256, 512, 1024, 2048]
    assert backbone.reductions[-3:] == [8, 8, 8]
    # mmseg ResNetV1c deep stem: 3 convs 32-32-64
    stem = backbone.body.conv1
    assert [m.out_channels for m in stem if hasattr(m, "out_channels")] == [32, 32, 64]
    layer4 = backbone.body.layer4
    assert layer4[1].conv2.dilation == (4, 4) and backbone.body.layer3[1].conv2.dilation == (2, 2)


def test_quickstart_model_instantiates_and_runs() -> None:
    import torch

    cfg = compose_config("train", TINY)
    module = instantiate(cfg.model, _recursive_=False)
    logits = module(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, cfg.data.num_classes, 64, 64)


def test_sac_multiple_config_patches_the_last_stage() -> None:
    from dynaseg.models.heads.sac import ScaleAdaptiveConv2d

    cfg = compose_config("train", [*TINY, "model=sac_multiple"])
    backbone = instantiate(cfg.model, _recursive_=False).net.backbone
    layer4_sac = [m for m in backbone.body.layer4.modules() if isinstance(m, ScaleAdaptiveConv2d)]
    assert len(layer4_sac) == 2  # both 3×3 convs of the single layer4 block of resnet_tiny
    assert not any(isinstance(m, ScaleAdaptiveConv2d) for m in backbone.body.layer3.modules())
    assert hasattr(backbone, "sac_scale")
