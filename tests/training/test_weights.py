"""model.init_from (weights from a checkpoint, strict or by prefix) and model.freeze."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from dynaseg.errors import CheckpointNotFoundError, ConfigError
from dynaseg.run.checkpoints import save_module
from dynaseg.run.recipes import build_model
from dynaseg.training.module import SegmentationModule
from dynaseg.training.weights import under_prefix
from helpers import TINY, compose_config

# SAC's paper baseline (3×3 classifier, no scales) and SAC-single: same names but the regression
SAC_PAPER = [
    "model=sac",
    "model.net.auxiliary_head=null",  # TINY (quickstart) sets aux values
    "model.net.decode_head.layout=sac_classifier",
    "model.net.decode_head.num_convs=0",
]


def tiny_module(overrides: list[str]) -> SegmentationModule:
    return build_model(compose_config("train", TINY + overrides))


def test_under_prefix_respects_name_boundaries() -> None:
    assert under_prefix("backbone.body.conv1.weight", ["backbone"])
    assert under_prefix("decode_head.conv_seg.bias", ["decode_head.conv_seg"])
    assert not under_prefix("backbone_extra.weight", ["backbone"])
    assert not under_prefix("decode_head.conv_segx.weight", ["decode_head.conv_seg"])


def test_init_from_by_prefix_loads_and_reports_unmatched_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    baseline = tiny_module([*SAC_PAPER, "model.net.decode_head.adaptive=false"])
    ckpt = save_module(baseline, tmp_path / "baseline.ckpt")
    torch.manual_seed(1)
    sac = tiny_module(
        [
            *SAC_PAPER,
            f"model.init_from={{path: '{ckpt}', prefixes: [backbone, decode_head], strict: false}}",
        ]
    )
    regression_before = copy.deepcopy(sac.net.decode_head.scale_regression.state_dict())
    sac.setup("fit")
    report = sac.init_report
    assert report["missing"] == [
        "decode_head.scale_regression.conv.weight",
        "decode_head.scale_regression.conv.bias",
    ]
    assert report["unexpected"] == [] and report["shape_mismatch"] == []
    assert report["loaded"] == len(baseline.net.state_dict()) and report["skipped"] == 0
    for name, value in baseline.net.state_dict().items():
        assert torch.equal(sac.net.state_dict()[name], value), name
    for name, value in sac.net.decode_head.scale_regression.state_dict().items():
        assert torch.equal(value, regression_before[name])  # kept its Eq. (1) initialisation
    sac.setup("fit")  # a second fit on the same module does not reload
    assert sac.init_report is report


def test_init_from_strict_names_what_does_not_match(tmp_path: Path) -> None:
    ckpt = save_module(tiny_module(["model=fcn"]), tmp_path / "fcn.ckpt")
    dmnet = tiny_module([f"model.init_from={{path: '{ckpt}'}}"])
    with pytest.raises(ConfigError, match=r"missing from the checkpoint \(\d+\): decode_head\."):
        dmnet.setup("fit")
    # by prefix: the backbone and the auxiliary head match exactly, strict passes
    dmnet = tiny_module(
        [f"model.init_from={{path: '{ckpt}', prefixes: [backbone, auxiliary_head]}}"]
    )
    dmnet.setup("fit")
    assert dmnet.init_report["missing"] == [] and dmnet.init_report["skipped"] > 0
    with pytest.raises(ConfigError, match=r"\['decoder'\] name nothing"):
        tiny_module([f"model.init_from={{path: '{ckpt}', prefixes: [decoder]}}"]).setup("fit")
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        tiny_module([f"model.init_from={{path: '{tmp_path}/none.ckpt'}}"]).setup("fit")


class ModeRecorder(L.Callback):
    """Training mode of the frozen and the trained batch norms at every training step."""

    def __init__(self) -> None:
        self.frozen_training: list[bool] = []
        self.head_training: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        norms = [m for m in pl_module.net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.frozen_training.append(any(m.training for m in norms))
        head = [
            m for m in pl_module.net.decode_head.modules() if isinstance(m, torch.nn.BatchNorm2d)
        ]
        self.head_training.append(all(m.training for m in head))


def test_freeze_keeps_weights_and_bn_statistics_over_a_fit() -> None:
    cfg = compose_config("train", TINY + ["model.freeze=[backbone]", "model.optimizer.lr=0.1"])
    module = build_model(cfg)
    assert module.frozen_parameters and all(
        n.startswith("backbone.") for n in module.frozen_parameters
    )
    backbone_before = copy.deepcopy(module.net.backbone.state_dict())
    head_before = copy.deepcopy(module.net.decode_head.state_dict())
    recorder = ModeRecorder()
    trainer = L.Trainer(
        max_steps=4,
        val_check_interval=2,  # a validation in the middle: modes must survive it
        check_val_every_n_epoch=None,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(module, datamodule=instantiate(cfg.data))
    assert recorder.frozen_training == [False] * 4 and recorder.head_training == [True] * 4
    after = module.net.backbone.state_dict()
    assert any(k.endswith("running_mean") for k in after)
    for name, value in backbone_before.items():  # weights, running stats, num_batches_tracked
        assert torch.equal(after[name], value), name
    changed = [
        k
        for k, v in module.net.decode_head.state_dict().items()
        if not torch.equal(v, head_before[k])
    ]
    assert any(k.endswith("running_mean") for k in changed)
    assert any(k.endswith("weight") for k in changed)
    frozen_ids = {id(p) for p in module.net.backbone.parameters()}
    optimised = [p for g in trainer.optimizers[0].param_groups for p in g["params"]]
    assert optimised and not any(id(p) in frozen_ids for p in optimised)


def test_freeze_prefix_must_name_a_parameter() -> None:
    with pytest.raises(InstantiationException) as info:  # Hydra wraps the module's error
        tiny_module(["model.freeze=[backbone.layer9]"])
    assert isinstance(info.value.__cause__, ConfigError)
    assert "model.freeze: ['backbone.layer9'] name no parameter" in str(info.value.__cause__)


def test_sac_single_only_row_trains_the_scale_regression_alone(tmp_path: Path) -> None:
    """SAC Tables 1/3 "SAC-single-only": baseline weights, only the scale regression trains."""
    baseline = tiny_module([*SAC_PAPER, "model.net.decode_head.adaptive=false"])
    ckpt = save_module(baseline, tmp_path / "baseline.ckpt")
    sac_only = tiny_module(
        [
            *SAC_PAPER,
            f"model.init_from={{path: '{ckpt}', prefixes: [backbone, decode_head.conv_seg]}}",
            "model.freeze=[backbone, decode_head.conv_seg]",
        ]
    )
    sac_only.setup("fit")  # strict: every backbone and classifier entry found
    trained = [n for n, p in sac_only.net.named_parameters() if p.requires_grad]
    assert trained == [
        "decode_head.scale_regression.conv.weight",
        "decode_head.scale_regression.conv.bias",
    ]
    groups = sac_only.parameter_groups()
    assert sum(len(g["params"]) for g in groups) == 2


def test_a_loaded_checkpoint_is_not_overwritten_by_init_from(tmp_path: Path) -> None:
    """Fine-tuning a module loaded from its checkpoint keeps its weights: init_from (whose file
    may be gone by then) is not applied again."""
    source = save_module(tiny_module([]), tmp_path / "source.ckpt")
    trained = tiny_module([f"model.init_from={{path: '{source}'}}"])
    trained.setup("fit")
    with torch.no_grad():
        trained.net.decode_head.conv_seg.bias.fill_(0.5)  # "training" changed the weights
    ckpt = save_module(trained, tmp_path / "trained.ckpt")
    source.unlink()
    restored = SegmentationModule.load_from_checkpoint(ckpt)
    restored.setup("fit")
    assert torch.all(restored.net.decode_head.conv_seg.bias == 0.5)
