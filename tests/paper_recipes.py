"""The four papers' training and test recipes, declared once: what every paper preset and every job
of every table sweep (conf/experiment/) must compose to.

Read by tests/test_paper_presets.py (the single presets), tests/test_composed_recipes.py (every
job of every ``*table*`` sweep) and the docs/fidelity.md check. Values are the papers' (sources in
docs/fidelity.md) or, where the paper is silent or we keep a stated deviation, the choice that
document states:

- SAC: Zhang et al., "Scale-adaptive Convolutions for Scene Parsing", ICCV 2017, §4.1.
- DSNet: Fu et al., "Dynamic Sampling Network for Semantic Segmentation", AAAI 2020, Implementation
  Details.
- CaC-Net: Liu et al., "Learning to Predict Context-adaptive Convolution for Semantic
  Segmentation", ECCV 2020 (arXiv:2004.08222), §4.1.
- DMNet: He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019, §4.1; its
  presets keep mmseg's poly floor (min_lr 1e-4), photometric distortion and cat-max-ratio 0.75 crop
  (docs/fidelity.md: "deviation left as is").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

SGD = "torch.optim.SGD"
POLY_TO_ZERO = {"name": "poly", "power": 0.9, "min_lr": 0.0}
POLY_MMSEG_FLOOR = {"name": "poly", "power": 0.9, "min_lr": 1e-4}
SAC_STEP = {"name": "step", "milestone_epochs": [60], "gamma": 0.1}
MS_05_175 = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]  # mmseg's / EncNet's (a paper that gives none)
MS_DSNET = [0.75, 1.0, 1.25, 1.5, 1.75, 2.0]  # DSNet's own
SINGLE_SCALE = {"mode": "whole", "scales": [1.0], "flip": False, "align_corners": False}
PRETRAINED = {"pretrained": True, "checkpoint_path": None, "init_from": None, "freeze": []}
DEEP_SUPERVISION = (
    0.4  # FCN auxiliary head on layer3, loss weight 0.4 (PSPNet's; no paper gives it)
)


def _recipe(**values: Any) -> dict[str, Any]:
    shared = {
        "optimizer": {"_target_": SGD, "momentum": 0.9, "weight_decay": 1e-4},
        "lr_mult": {},
        "ratio_range": [0.5, 2.0],
        "photometric": False,
        "cat_max_ratio": 1.0,
        "devices": 4,
        "avg_non_ignore": False,
        "output_stride": 8,
        "weights": PRETRAINED,
        "inference": SINGLE_SCALE,
        "test_variants": {},
        "test_checkpoint": "last",
        "train_split": "trainaug" if values["dataset"] == "VOCAug" else "train",
    }
    lr = values.pop("lr")
    shared["optimizer"] = {**shared["optimizer"], "lr": lr}
    return {**shared, **values}


# paper -> dataset class -> recipe (field -> value, as recipe_of() reads it from a composed config)
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "sac": {  # §4.1: lr 5e-4 for 60 epochs, /10 for another 10; batch 8; 500 crops, resize 0.5-1.5
        dataset: _recipe(
            dataset=dataset,
            lr=5e-4,
            scheduler=SAC_STEP,
            crop=[500, 500],
            ratio_range=[0.5, 1.5],
            global_batch=8,
            length=("epochs", 70),
            deep_supervision=None,
            backbone="resnet101.tv_in1k",
        )
        for dataset in ("Cityscapes", "ADE20K")
    },
    "dsnet": {  # poly to 0; lr 0.01 (0.005 PASCAL-Context), heads 0.1x; batch 32 (24 ADE20K)
        dataset: _recipe(
            dataset=dataset,
            lr=lr,
            lr_mult={"decode_head": 0.1, "auxiliary_head": 0.1},
            scheduler=POLY_TO_ZERO,
            crop=[crop, crop],
            global_batch=batch,
            length=("steps", steps),
            deep_supervision=DEEP_SUPERVISION,
            backbone="resnet101c",
            output_stride=16,
        )
        for dataset, lr, crop, batch, steps in (
            ("VOCAug", 0.01, 512, 32, 26_455),  # 10,582 x 80 / 32
            ("ADE20K", 0.01, 576, 24, 126_313),  # 20,210 x 150 / 24
            ("PascalContext", 0.005, 512, 32, 12_495),  # 4,998 x 80 / 32
        )
    },
    "cacnet": {  # poly to 0; "only randomly flip ... and scale ... 0.5 to 2.0"; batch 16
        dataset: _recipe(
            dataset=dataset,
            lr=lr,
            scheduler=POLY_TO_ZERO,
            crop=[crop, crop],
            global_batch=16,
            length=("steps", steps),
            deep_supervision=DEEP_SUPERVISION,
            backbone=backbone,
        )
        for dataset, lr, crop, steps, backbone in (
            ("PascalContext", 0.001, 512, 37_485, "resnet50c"),  # 4,998 x 120 / 16; ablations R50
            ("VOCAug", 0.002, 512, 52_910, "resnet101c"),  # 10,582 x 80 / 16
            ("ADE20K", 0.004, 576, 227_363, "resnet101c"),  # 20,210 x 180 / 16
        )
    },
    "dmnet": {  # lr 0.01 (0.005 PASCAL-Context), wd 1e-4; batch 16 (mmseg's); mmseg's pipeline
        dataset: _recipe(
            dataset=dataset,
            lr=lr,
            scheduler=POLY_MMSEG_FLOOR,
            crop=[crop, crop],
            photometric=True,
            cat_max_ratio=0.75,
            global_batch=16,
            length=("steps", steps),
            deep_supervision=ds,
            backbone=backbone,
            inference=inference,
        )
        for dataset, lr, crop, steps, ds, backbone, inference in (
            ("VOCAug", 0.01, 512, 52_910, None, "resnet50c", SINGLE_SCALE),  # Tables 1-5: no DS
            (
                "PascalContext",
                0.005,
                512,
                24_990,
                DEEP_SUPERVISION,
                "resnet101c",
                {**SINGLE_SCALE, "scales": MS_05_175, "flip": True},
            ),  # Table 8
            (
                "ADE20K",
                0.01,
                576,
                151_575,
                DEEP_SUPERVISION,
                "resnet101c",
                {**SINGLE_SCALE, "scales": MS_05_175, "flip": True},
            ),  # Table 9
        )  # fmt: skip
    },
}


@dataclass(frozen=True)
class Sweep:
    """A table sweep's recipe: its paper's for ``dataset``, with ``fixed`` fields replaced and
    ``axes`` fields taking exactly these values across the sweep's jobs."""

    paper: str
    dataset: str
    fixed: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)


CAC_MS_FLIP = {"ms_flip": {"scales": MS_05_175, "flip": True}}
SAC_MS = {"ms": {"scales": MS_05_175, "flip": False}}
BOTH_R = ["resnet101c", "resnet50c"]
WITH_AND_WITHOUT_DS = [None, DEEP_SUPERVISION]
SCALE_ONLY = {  # baseline weights loaded and frozen (§4.1); only the scale regressions train
    "weights": {
        **PRETRAINED,
        "init_from": {
            "path": "baseline.ckpt",
            "prefixes": ["backbone.body", "decode_head.conv_seg"],
            "strict": True,
        },
        "freeze": ["backbone.body", "decode_head.conv_seg"],
    },
    "test_variants": SAC_MS,
}

# every conf/experiment/*table*.yaml sweep except the CPU miniatures (MINIATURES)
SWEEPS: dict[str, Sweep] = {
    "cacnet_table1_components": Sweep("cacnet", "PascalContext", {"test_variants": CAC_MS_FLIP},
                                      {"backbone": BOTH_R}),
    "cacnet_table2_strategies": Sweep(
        "cacnet", "PascalContext",
        {"test_variants": {"flip": {"flip": True}, **CAC_MS_FLIP}},
        {"deep_supervision": WITH_AND_WITHOUT_DS},
    ),
    "cacnet_table3_num_heads": Sweep("cacnet", "PascalContext", {"test_variants": CAC_MS_FLIP}),
    "cacnet_table4_kernel_sizes": Sweep("cacnet", "PascalContext", {"test_variants": CAC_MS_FLIP}),
    "cacnet_table5_dilations": Sweep("cacnet", "PascalContext", {"test_variants": CAC_MS_FLIP}),
    "cacnet_table6_weighting": Sweep("cacnet", "PascalContext", {"test_variants": CAC_MS_FLIP}),
    "dmnet_table1_kernel_sets": Sweep("dmnet", "VOCAug"),
    "dmnet_table2_dilations": Sweep("dmnet", "VOCAug"),
    "dmnet_table3_heads": Sweep("dmnet", "VOCAug"),
    "dmnet_table4_context_stage": Sweep("dmnet", "VOCAug"),
    "dmnet_table5_backbones": Sweep("dmnet", "VOCAug", axes={"backbone": BOTH_R}),
    "dmnet_table6_deep_supervision": Sweep(
        "dmnet", "VOCAug",
        {"backbone": "resnet101c",
         "test_variants": {"flip": {"flip": True}, "ms_flip": {"scales": MS_05_175, "flip": True}}},
        {"deep_supervision": WITH_AND_WITHOUT_DS},
    ),
    "dsnet_table1_feature_pairs": Sweep("dsnet", "VOCAug", {"backbone": "resnet50c"}),
    "dsnet_table2_strategies": Sweep(
        "dsnet", "VOCAug",
        {"test_variants": {"flip": {"flip": True}, "ms_flip": {"scales": MS_DSNET, "flip": True}}},
        {"deep_supervision": WITH_AND_WITHOUT_DS},
    ),
    "sac_table1_cityscapes": Sweep("sac", "Cityscapes", {"test_variants": SAC_MS}),
    "sac_table1_scale_only": Sweep("sac", "Cityscapes", SCALE_ONLY),
    "sac_table3_ade20k": Sweep("sac", "ADE20K", {"test_variants": SAC_MS}),
    "sac_table3_scale_only": Sweep("sac", "ADE20K", SCALE_ONLY),
}  # fmt: skip
# The CPU miniatures (docs/ablations.md) run the tables' heads on synthetic data with a tiny
# frozen backbone and their own recipe (conf/scale/mini.yaml): not a paper's recipe.
MINIATURES = {
    "dmnet_table1_kernel_sets_mini",
    "dmnet_table2_dilations_mini",
    "dmnet_table4_context_stage_mini",
}

MS_FLIP = {**SINGLE_SCALE, "scales": MS_05_175, "flip": True}
DMNET_R101_DS = {
    "deep_supervision": DEEP_SUPERVISION,
    "backbone": "resnet101c",
    "inference": MS_FLIP,
}


def fine_tuned(lr: float, steps: int, **fixed: Any) -> dict[str, Any]:
    """The VOC test-server second stage: the first stage's weights fine-tuned on VOC 2012
    train+val (2,913 images) for ``steps`` at ``lr`` (docs/fidelity.md: the papers give no
    fine-tuning recipe beyond DSNet's 80 epochs)."""
    init = {"path": "stage1.ckpt", "prefixes": None, "strict": True}
    return {
        "optimizer": {"_target_": SGD, "lr": lr, "momentum": 0.9, "weight_decay": 1e-4},
        "length": ("steps", steps),
        "train_split": "trainval",
        "weights": {**PRETRAINED, "init_from": init},
        **fixed,
    }


# the single paper presets: preset -> (paper, dataset, fields replaced)
PRESETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sac_r101_cityscapes": ("sac", "Cityscapes", {}),
    "sac_r101_ade20k": ("sac", "ADE20K", {}),
    "dsnet_r101_voc_aug": ("dsnet", "VOCAug", {}),
    "dsnet_r101_ade20k": ("dsnet", "ADE20K", {}),
    "dsnet_r101_pascal_context": ("dsnet", "PascalContext", {}),
    "cacnet_r50_pascal_context": ("cacnet", "PascalContext", {}),
    "cacnet_r101_voc_aug": ("cacnet", "VOCAug", {}),
    "cacnet_r101_ade20k": ("cacnet", "ADE20K", {}),
    "dmnet_r50_voc_aug": ("dmnet", "VOCAug", {}),
    "dmnet_r101_pascal_context": ("dmnet", "PascalContext", {}),
    "dmnet_r101_ade20k": ("dmnet", "ADE20K", {}),
    # the test-server tables: DMNet Table 7, DSNet Table 3, CaC-Net Table 10 (VOC), SAC Table 2
    "dmnet_r101_voc_aug": ("dmnet", "VOCAug", DMNET_R101_DS),
    "dmnet_r101_voc_trainval_ft": ("dmnet", "VOCAug", fine_tuned(0.001, 14_565, **DMNET_R101_DS)),
    "dsnet_r101_voc_trainval_ft": (
        "dsnet", "VOCAug",
        fine_tuned(0.001, 7_283, inference={**MS_FLIP, "scales": MS_DSNET}, test_checkpoint="best"),
    ),
    "cacnet_r101_voc_trainval_ft": ("cacnet", "VOCAug", fine_tuned(2e-4, 14_565, inference=MS_FLIP)),
    "sac_r101_cityscapes_test": ("sac", "Cityscapes", {"inference": {**SINGLE_SCALE, "scales": MS_05_175}}),
}  # fmt: skip


def expected_recipe(paper: str, dataset: str, fixed: dict[str, Any] | None = None) -> dict:
    """The declared recipe of ``paper`` on ``dataset`` with ``fixed`` fields replaced."""
    return {**RECIPES[paper][dataset], **(fixed or {})}


def _plain(node: Any) -> Any:
    """A config node as plain containers; any other value as it is."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def recipe_of(cfg: DictConfig) -> dict[str, Any]:
    """The recipe fields of a composed train config, as plain values (keys as in ``RECIPES``)."""
    model, data, trainer = cfg.model, cfg.data, cfg.trainer
    aux = model.net.auxiliary_head
    backbone = model.net.backbone
    inference = {k: _plain(model.inference[k]) for k in SINGLE_SCALE}
    return {
        "dataset": data.dataset._target_.rsplit(".", 1)[-1],
        "optimizer": {
            k: model.optimizer[k] for k in ("_target_", "lr", "momentum", "weight_decay")
        },
        "lr_mult": _plain(model.lr_mult),
        "scheduler": _plain(model.scheduler),
        "crop": list(data.crop_size),
        "ratio_range": list(data.ratio_range),
        "photometric": data.photometric,
        "cat_max_ratio": data.cat_max_ratio,
        "global_batch": trainer.devices * trainer.get("num_nodes", 1) * data.batch_size,
        "devices": trainer.devices,
        "length": ("epochs", trainer.max_epochs)
        if trainer.max_steps == -1
        else ("steps", trainer.max_steps),
        "deep_supervision": None if aux is None else model.aux_loss_weight,
        "avg_non_ignore": model.avg_non_ignore,
        "backbone": backbone.name,
        "output_stride": backbone.output_stride,
        "weights": {
            "pretrained": backbone.pretrained,
            "checkpoint_path": backbone.checkpoint_path,
            "init_from": _plain(model.init_from),
            "freeze": list(model.freeze),
        },
        "inference": inference,
        "test_variants": _plain(cfg.get("test_variants")) or {},
        "test_checkpoint": cfg.test_checkpoint,
        "train_split": data.train_split,
    }


def recipe_differences(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, tuple]:
    """``{field: (actual, expected)}`` for every declared field the composed recipe differs in."""
    return {k: (actual.get(k), v) for k, v in expected.items() if actual.get(k) != v}
