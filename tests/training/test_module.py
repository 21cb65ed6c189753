"""The LightningModule: plain hyper-parameters, safe checkpoints, schedule, LR groups, norms."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from dynaseg.training.module import SegmentationModule, safe_metric_name
from dynaseg.training.recipes import build_model
from dynaseg.training.schedules import poly_lr_lambda
from helpers import CONF_DIR, TINY, compose_config

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def tiny_module(overrides: list[str] | None = None) -> SegmentationModule:
    cfg = compose_config("train", TINY + (overrides or []))
    return build_model(cfg)


def test_checkpoint_loads_with_weights_only(tmp_path) -> None:
    module = tiny_module()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_steps=0)
    trainer.strategy.connect(module)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, weights_only=True)  # torch's safe loader accepts every entry
    assert raw["hyper_parameters"]["net"]["_target_"] == "dynaseg.models.segmentor.Segmentor"
    restored = SegmentationModule.load_from_checkpoint(path)
    x = torch.randn(1, 3, 48, 48)
    module.eval()
    restored.eval()
    assert torch.equal(module(x), restored(x))
    assert restored.class_names[0] == "sky"


def test_poly_schedule_matches_mmseg_formula() -> None:
    f = poly_lr_lambda(0.01, total_iters=100, power=0.9, min_lr=1e-4)
    assert f(0) == pytest.approx(1.0)
    assert 0.01 * f(50) == pytest.approx((0.01 - 1e-4) * 0.5**0.9 + 1e-4)
    assert 0.01 * f(100) == pytest.approx(1e-4)
    assert 0.01 * f(1000) == pytest.approx(1e-4)  # floor holds past the end


def test_lr_multipliers_build_parameter_groups() -> None:
    module = tiny_module(["+model.lr_mult={decode_head: 10.0}"])
    groups = {g["name"]: g for g in module.parameter_groups()}
    base = module.hparams.optimizer["lr"]
    assert groups["decode_head"]["lr"] == pytest.approx(10 * base)
    assert groups["default"]["lr"] == pytest.approx(base)
    n_head = sum(p.numel() for p in module.net.decode_head.parameters())
    assert sum(p.numel() for p in groups["decode_head"]["params"]) == n_head
    bad = tiny_module(["+model.lr_mult={decoder: 10.0}"])
    with pytest.raises(ValueError, match="decoder"):
        bad.parameter_groups()


@pytest.mark.parametrize("model", MODELS)
def test_every_norm_layer_converts_to_syncbn(model: str) -> None:
    """``trainer=ddp`` (``sync_batchnorm: true``) runs ``convert_sync_batchnorm`` on the module;
    torch's SyncBN cannot run on CPU, so check that the conversion reaches every norm layer of
    every model config: no plain BatchNorm and no other normalisation left behind."""
    module = tiny_module([f"model={model}"])
    norm_types = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)
    n_bn = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    norms = [m for m in converted.modules() if isinstance(m, norm_types)]
    assert n_bn > 0 and len(norms) == n_bn
    assert all(type(m) is torch.nn.SyncBatchNorm for m in norms)


def test_ddp_trainer_has_syncbn_amp_and_multi_node() -> None:
    cfg = compose_config("train", TINY + ["trainer=ddp", "trainer.num_nodes=2"])
    assert cfg.trainer.sync_batchnorm is True
    assert cfg.trainer.precision == "16-mixed"
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2


def test_losses_weight_the_auxiliary_head() -> None:
    module = tiny_module()
    labels = torch.randint(0, 10, (2, 16, 16))
    labels[0, 0, 0] = 255
    logits = [torch.randn(2, 10, 4, 4), torch.randn(2, 10, 4, 4)]
    losses = module.compute_losses(logits, labels)
    ce = torch.nn.functional.cross_entropy(
        torch.nn.functional.interpolate(logits[1], (16, 16), mode="bilinear"), labels,
        ignore_index=255,
    )  # fmt: skip
    assert losses["loss_aux"].item() == pytest.approx(0.4 * ce.item(), rel=1e-5)
    # mmseg's default (avg_non_ignore=False): the sum over labelled pixels / all 512 pixels
    mmseg_style = tiny_module(["model.avg_non_ignore=false"])
    losses = mmseg_style.compute_losses(logits, labels)
    assert losses["loss_aux"].item() == pytest.approx(0.4 * ce.item() * 511 / 512, rel=1e-5)


def test_metric_names_are_safe_file_names() -> None:
    assert safe_metric_name("traffic light") == "traffic_light"
    assert safe_metric_name("car/truck (big)") == "car_truck_big"
    assert safe_metric_name("//") == "class"
