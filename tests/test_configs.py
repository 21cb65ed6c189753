"""Every config composes, and the paper configuration is what `model=dmnet data=ade20k` shows."""

from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dynaseg.run.entry import compose
from helpers import CONF_DIR, TINY, compose_config, experiment_overrides, run_python

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_data_config_composes(model: str, data: str) -> None:
    cfg = compose_config("train", [f"model={model}", f"data={data}"])
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    # num_classes is not configured: the segmentor hands the dataset's to every head
    assert "num_classes" not in resolved and "num_classes" not in resolved["net"]["decode_head"]
    assert "class_names" not in OmegaConf.to_container(cfg.data)
    assert resolved["ignore_index"] == cfg.data.ignore_index == 255
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_paper_dmnet_configuration_on_ade20k() -> None:
    cfg = compose_config("train", ["model=dmnet", "data=ade20k"])
    net = cfg.model.net
    assert net.backbone.name == "resnet50c" and net.backbone.output_stride == 8
    assert list(net.decode_head.filter_sizes) == [1, 3, 5, 7]
    # stage roles, resolved by the Segmentor: on a ResNet layer4 (index 4) and layer3 (3)
    assert net.decode_head.channels == 512 and net.decode_head.in_index == "context"
    assert net.auxiliary_head.in_index == "auxiliary" and net.auxiliary_head.channels == 256
    assert cfg.model.aux_loss_weight == 0.4
    assert cfg.model.optimizer._target_ == "torch.optim.SGD"
    assert cfg.model.optimizer.lr == 0.01 and cfg.model.optimizer.momentum == 0.9
    assert cfg.model.scheduler.power == 0.9 and cfg.model.scheduler.min_lr == 1e-4
    assert instantiate(cfg.data).num_classes == 150 and cfg.trainer.max_steps == 80000


def test_cfg_job_prints_the_paper_configuration() -> None:
    out = run_python(
        "src/train.py", "model=dmnet", "data=ade20k", "--cfg", "job", timeout=120, check=True
    ).stdout
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

    from dynaseg.run.recipes import build_model

    cfg = compose_config("train", TINY)
    module = build_model(cfg)
    logits = module(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 10, 64, 64)
    assert module.hparams.class_names[:3] == ["sky", "grass", "water"]
    assert len(module.hparams.palette) == 10


def test_sac_multiple_config_patches_the_last_stage() -> None:
    from dynaseg.models.scale_adaptive import ScaleAdaptiveConv2d

    cfg = compose_config("train", [*TINY, "model=sac_multiple"])
    backbone = instantiate(cfg.model, _recursive_=False, num_classes=10).net.backbone
    layer4_sac = [m for m in backbone.body.layer4.modules() if isinstance(m, ScaleAdaptiveConv2d)]
    assert len(layer4_sac) == 2  # both 3×3 convs of the single layer4 block of resnet_tiny
    assert not any(isinstance(m, ScaleAdaptiveConv2d) for m in backbone.body.layer3.modules())
    assert hasattr(backbone, "sac_scale")


HEADS = sorted(p.stem for p in (CONF_DIR / "model" / "decode_head").glob("*.yaml"))


def test_dmnet_and_fcn_compose_to_the_pinned_paper_values() -> None:
    """The config tree built from parts gives exactly the values the monolithic files had."""
    dmnet = OmegaConf.to_container(
        compose_config("train", ["model=dmnet", "data=ade20k"]).model, resolve=True
    )
    fcn = OmegaConf.to_container(
        compose_config("train", ["model=fcn", "data=ade20k"]).model, resolve=True
    )
    recipe = {
        "optimizer": {
            "_target_": "torch.optim.SGD",
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 0.0005,
        },
        "lr_mult": {},
        "scheduler": {"name": "poly", "power": 0.9, "min_lr": 1.0e-4},
    }
    aux = {
        "_target_": "dynaseg.models.heads.fcn.FCNHead",
        "_partial_": True,
        "in_index": "auxiliary",
        "channels": 256,
        "num_convs": 1,
        "concat_input": False,
        "dropout_ratio": 0.1,
    }
    backbone = {
        "_target_": "dynaseg.models.backbones.TimmBackbone",
        "name": "resnet50c",
        "pretrained": False,
        "checkpoint_path": None,
        "output_stride": 8,
        "out_indices": None,
    }
    for model in (dmnet, fcn):
        assert model["_target_"] == "dynaseg.training.module.SegmentationModule"
        assert model["ignore_index"] == 255 and model["aux_loss_weight"] == 0.4
        assert model["avg_non_ignore"] is False
        assert {k: model[k] for k in recipe} == recipe
        assert model["net"]["_target_"] == "dynaseg.models.segmentor.Segmentor"
        assert model["net"]["auxiliary_head"] == aux and model["net"]["backbone"] == backbone
    assert dmnet["net"]["decode_head"] == {
        "_target_": "dynaseg.models.heads.dmnet.DMHead",
        "_partial_": True,
        "in_index": "context",
        "context_index": "context",
        "channels": 512,
        "filter_sizes": [1, 3, 5, 7],
        "filter_type": "dynamic",
        "dilations": None,
        "fusion": False,
        "dropout_ratio": 0.1,
        "dynamic_conv": "fast",
        "split_bottleneck": True,
    }
    assert fcn["net"]["decode_head"] == {
        "_target_": "dynaseg.models.heads.fcn.FCNHead",
        "_partial_": True,
        "in_index": "context",
        "channels": 512,
        "num_convs": 2,
        "concat_input": True,
        "dropout_ratio": 0.1,
    }


def test_the_shared_recipe_is_a_one_line_edit(tmp_path) -> None:
    """Every model reads SGD + poly from conf/model/recipe/sgd_poly.yaml: change one line there
    (momentum) and every composed model follows."""
    import shutil

    from dynaseg.run.entry import compose

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    recipe = conf / "model" / "recipe" / "sgd_poly.yaml"
    text = recipe.read_text()
    assert text.count("momentum: 0.9\n") == 1
    recipe.write_text(text.replace("momentum: 0.9\n", "momentum: 0.77\n"))
    for model in MODELS:
        cfg = compose("train", [f"model={model}"], return_hydra_config=True, config_dir=conf)
        assert cfg.model.optimizer.momentum == 0.77, model
        assert cfg.hydra.runtime.choices["model/recipe"] == "sgd_poly", model


@pytest.mark.parametrize("head", HEADS)
def test_each_decode_head_is_one_override_on_dmnet(head: str) -> None:
    import torch

    from dynaseg.run.recipes import build_model

    cfg = compose_config("train", [*TINY, f"model/decode_head={head}"])
    module = build_model(cfg)
    built = type(module.net.decode_head)
    # the head file's own target (dmnet_aspp is DMNet Table 3's ASPP: a DMHead variant)
    assert f"{built.__module__}.{built.__name__}" == cfg.model.net.decode_head._target_
    assert built.__module__.startswith("dynaseg.models.heads.")
    assert module.net.decode_head.num_classes == 10  # handed over by the segmentor
    # a head that reads a per-image input besides the image (the zoom oracle: the scene's zoom)
    scene = {k: torch.ones(1) for k in module.net.scene_inputs}
    assert module.eval()(torch.randn(1, 3, 64, 64), None, scene).shape == (1, 10, 64, 64)


@pytest.mark.parametrize("override", ["model/auxiliary_head=none", "~model/auxiliary_head"])
def test_auxiliary_head_switches_off(override: str) -> None:
    from dynaseg.run.recipes import build_model

    paper = build_model(compose_config("train", ["model=fcn", override]))
    assert len(paper.net.auxiliary_head) == 0
    # the quick start sets auxiliary-head values: dropping the head must drop them too, and
    # forgetting to is named, not a TypeError from deep inside the segmentor
    quick = build_model(compose_config("train", [*TINY, override, "model.net.auxiliary_head=null"]))
    assert len(quick.net.auxiliary_head) == 0
    with pytest.raises(Exception, match="model.net.auxiliary_head=null to drop them"):
        build_model(compose_config("train", [*TINY, override]))


def test_dmnet_head_parameter_counts_unchanged() -> None:
    """DMNet-R50-D8 on ADE20K: mmseg's DMHead and FCN auxiliary head parameter counts."""
    from dynaseg.run.recipes import build_model

    net = build_model(compose_config("train", ["model=dmnet", "data=ade20k"])).net
    assert sum(p.numel() for p in net.decode_head.parameters()) == 27_351_190
    assert sum(p.numel() for p in net.auxiliary_head.parameters()) == 2_398_358


def test_data_variant_extends_its_base() -> None:
    base = OmegaConf.to_container(compose_config("train", ["data=cityscapes"]).data)
    variant = OmegaConf.to_container(compose_config("train", ["data=cityscapes_769"]).data)
    changed = {k for k in base if base[k] != variant[k]}
    assert changed == {"crop_size", "scale", "test_scale"}
    assert variant["crop_size"] == [769, 769] and variant["scale"] == [2049, 1025]


def test_slurm_launcher_config_follows_the_trainer() -> None:
    """`hydra/launcher=slurm` (Hydra's submitit plugin, the `slurm` extra) composes and asks SLURM
    for trainer.num_nodes nodes × trainer.devices tasks/GPUs; composition only, no cluster."""
    from dynaseg.run.entry import compose

    overrides = [
        "trainer=ddp",
        "trainer.num_nodes=2",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
    ]
    cfg = compose("train", overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min == 4320


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_follows_its_manifest(experiment: str) -> None:
    """Every preset composes, its model resolves as in a run and its values fit their typed
    schemas (dynaseg.config_schema); a preset run on the hardware it
    names gets no recipe warning: global batch = GPUs × per-process batch, steps and LR as
    stated; its inference block is valid."""
    from dynaseg.config_schema import validate_config
    from dynaseg.models.inference import InferenceConfig
    from dynaseg.run.manifest import validate_manifest

    cfg = compose("train", experiment_overrides(experiment), return_hydra_config=True)
    cfg.hydra.runtime.output_dir = "logs/train/runs/x"  # what Hydra sets when the run starts
    HydraConfig.instance().set_config(cfg)  # as in a run: ${hydra:runtime.choices.data} resolves
    try:
        OmegaConf.to_container(cfg.model, resolve=True)
        validate_config(cfg)  # every value of the preset fits its typed schema
    finally:
        HydraConfig.instance().cfg = None
    if cfg.get("manifest") is None:
        return  # not a paper preset (quick-start, miniature tables, ...)
    manifest = validate_manifest(OmegaConf.to_container(cfg.manifest, resolve=True))
    processes = cfg.trainer.devices * cfg.trainer.get("num_nodes", 1)
    assert processes == manifest["gpus"] * manifest["nodes"]
    assert processes * cfg.data.batch_size == manifest["global_batch"]
    if cfg.trainer.max_steps > 0:
        assert cfg.trainer.max_steps == manifest["max_steps"]
    else:  # epoch-based (SAC): the loader decides the steps; the epoch count must be set
        assert cfg.trainer.max_epochs > 0
    assert cfg.model.optimizer.lr == pytest.approx(manifest["lr"])
    InferenceConfig.from_dict(OmegaConf.to_container(cfg.model.get("inference"), resolve=True))


def test_experiment_offers_only_runnable_presets() -> None:
    """Parts that presets are built from live in conf/experiment_parts/, so ``experiment=`` (and
    its tab completion) lists presets only, and a part is not selectable as one."""
    nested = [
        p for p in (CONF_DIR / "experiment").rglob("*") if p.parent != CONF_DIR / "experiment"
    ]
    assert nested == []
    assert {"mmseg", "sac"} <= {p.name for p in (CONF_DIR / "experiment_parts").iterdir()}
    with pytest.raises(MissingConfigException, match="find 'experiment/mmseg/schedule_80k'"):
        compose("train", ["experiment=mmseg/schedule_80k"])


def test_mmseg_presets_cover_every_published_row() -> None:
    rows = [e for e in EXPERIMENTS if e.startswith("mmseg_dmnet_")]
    assert len(rows) == 12  # R50/R101 x (ADE20K 80k/160k, Cityscapes 512x1024 + 769x769 40k/80k)
    cfg = compose_config("train", ["experiment=mmseg_dmnet_r101_d8_cityscapes_769x769_40k"])
    assert cfg.data.crop_size == [769, 769] and cfg.model.net.backbone.name == "resnet101c"
    inference = cfg.model.inference
    assert inference.mode == "slide" and list(inference.stride) == [513, 513]
    assert inference.align_corners is True
    assert cfg.manifest.global_batch == 8 and cfg.manifest.published.mIoU == 77.62


def test_miniature_arms_load_the_backbone_of_their_backbone_seed() -> None:
    """experiment=mini_backbone backbone_seed=B trains backbone B (seed B) into the directory the
    miniature's arms read with backbone_seed=B (0 by default: one backbone per generator)."""
    paths = {}
    for overrides in (
        ["experiment=mini_backbone", "data=synthetic_scales_fixed", "backbone_seed=2"],
        ["experiment=scale_control_mini", "data=synthetic_scales_fixed", "backbone_seed=2"],
        ["experiment=dmnet_table1_kernel_sets_mini", "data=synthetic_scales_fixed"],
    ):
        cfg = compose("train", overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            if overrides[0] == "experiment=mini_backbone":
                assert cfg.seed == 2
                paths["trained"] = f"{cfg.hydra.run.dir}/checkpoints/backbone.ckpt"
            else:
                paths[overrides[-1]] = cfg.model.init_from.path
        finally:
            HydraConfig.instance().cfg = None
    assert paths["trained"] == paths["backbone_seed=2"]
    assert paths["trained"].endswith(
        "mini_backbones/synthetic_scales_fixed-seed2/checkpoints/backbone.ckpt"
    )
    assert paths["data=synthetic_scales_fixed"] == paths["trained"].replace("-seed2", "-seed0")


def test_size_matched_generators_differ_from_the_default_in_the_size_pair_only() -> None:
    """R3's generators (docs/ablations.md, Evidence round 2, fourth session) change the bird /
    balloon pair and nothing else; their zoom-1 twin changes the zoom as well."""

    def data(name: str) -> dict:
        return OmegaConf.to_container(compose_config("train", [f"data={name}"]).data)

    default, fixed = data("synthetic_scales"), data("synthetic_scales_fixed")
    matched, matched_fixed = (
        data("synthetic_scales_size_matched"),
        data("synthetic_scales_size_matched_fixed"),
    )
    assert matched["dataset"].pop("size_pair_pixel_radius") == [15.0, 25.0]
    assert matched_fixed["dataset"].pop("size_pair_pixel_radius") == [15.0, 25.0]
    assert matched == default and matched_fixed == fixed
    assert matched_fixed["dataset"]["zoom_range"] == [1.0, 1.0]
