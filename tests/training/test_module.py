"""The LightningModule: plain hyper-parameters, safe checkpoints, schedule, LR groups, norms."""

from __future__ import annotations

import pytest
import torch

from dynaseg.run.checkpoints import save_module
from dynaseg.run.recipes import build_model
from dynaseg.training.module import SegmentationModule, safe_metric_name
from dynaseg.training.schedules import poly_lr_lambda
from helpers import CONF_DIR, TINY, compose_config

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def tiny_module(overrides: list[str] | None = None) -> SegmentationModule:
    cfg = compose_config("train", TINY + (overrides or []))
    return build_model(cfg)


def test_checkpoint_loads_with_weights_only(tmp_path) -> None:
    module = tiny_module()
    path = save_module(module, tmp_path / "model.ckpt")
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
    # DSNet's lr_mult names auxiliary_head; without deep supervision there is nothing to scale
    no_aux = tiny_module(["model.net.auxiliary_head=null", "+model.lr_mult={auxiliary_head: 0.1}"])
    assert [g["name"] for g in no_aux.parameter_groups()] == ["default"]


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
        torch.nn.functional.interpolate(logits[1], (16, 16), mode="bilinear"),
        labels,
        ignore_index=255,
    )
    assert losses["loss_aux"].item() == pytest.approx(0.4 * ce.item(), rel=1e-5)
    # mmseg's default (avg_non_ignore=False): the sum over labelled pixels / all 512 pixels
    mmseg_style = tiny_module(["model.avg_non_ignore=false"])
    losses = mmseg_style.compute_losses(logits, labels)
    assert losses["loss_aux"].item() == pytest.approx(0.4 * ce.item() * 511 / 512, rel=1e-5)


def test_metric_names_are_safe_file_names() -> None:
    assert safe_metric_name("traffic light") == "traffic_light"
    assert safe_metric_name("car/truck (big)") == "car_truck_big"
    assert safe_metric_name("//") == "class"


def _loss_and_grads(module: SegmentationModule, images, labels):
    module.train()
    torch.manual_seed(3)  # same dropout masks
    logits = module.net.forward_train(module.prepare_images(images))
    losses = module.compute_losses(logits, labels)
    total = sum(losses.values())
    module.zero_grad()
    total.backward()
    grads = {n: p.grad.clone() for n, p in module.net.named_parameters() if p.grad is not None}
    return losses, grads


def _assert_same_step(a, b, tol: float = 1e-5) -> None:
    (losses_a, grads_a), (losses_b, grads_b) = a, b
    for name, value in losses_a.items():
        assert abs(value.item() - losses_b[name].item()) <= tol, name
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name, grad in grads_a.items():
        assert (grad - grads_b[name]).abs().max() <= tol * max(1.0, grad.abs().max().item()), name


def _tiny_pair(**switches) -> tuple[SegmentationModule, SegmentationModule]:
    """The TINY model twice with the same weights, the second with ``model.<key>=value``
    switches (``net.grad_checkpointing`` for the network's)."""
    torch.manual_seed(0)
    reference = build_model(compose_config("train", TINY))
    overrides = [f"model.{key}={value}" for key, value in switches.items()]
    other = build_model(compose_config("train", TINY + overrides))
    other.load_state_dict(reference.state_dict())
    return reference, other


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (2, 64, 64), generator=g)
    labels[:, :5] = 255
    return torch.randn(2, 3, 64, 64, generator=g), labels


def test_lean_loss_equals_the_literal_path_in_losses_and_gradients() -> None:
    lean, literal = _tiny_pair(lean_loss="false")
    assert lean.hparams.lean_loss and not literal.hparams.lean_loss
    images, labels = _batch()
    _assert_same_step(
        _loss_and_grads(literal, images, labels), _loss_and_grads(lean, images, labels)
    )


def test_activation_checkpointing_keeps_losses_gradients_and_bn_statistics() -> None:
    reference, checkpointed = _tiny_pair(**{"net.grad_checkpointing": "true"})
    assert checkpointed.net.grad_checkpointing and checkpointed.net.backbone.grad_checkpointing
    images, labels = _batch()
    _assert_same_step(
        _loss_and_grads(reference, images, labels), _loss_and_grads(checkpointed, images, labels)
    )
    for (name, a), b in zip(
        reference.net.state_dict().items(), checkpointed.net.state_dict().values(), strict=True
    ):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name  # running stats updated once


def test_channels_last_leaves_outputs_unchanged() -> None:
    reference, nhwc = _tiny_pair(channels_last="true")
    images, labels = _batch()
    conv = next(m for m in nhwc.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    _assert_same_step(
        _loss_and_grads(reference, images, labels), _loss_and_grads(nhwc, images, labels)
    )
    reference.eval()
    nhwc.eval()
    assert torch.allclose(reference(images), nhwc(images), atol=1e-5)


def test_torch_compile_switch_compiles_in_place_keeping_state_dict_keys() -> None:
    reference, compiled = _tiny_pair(torch_compile="{backend: eager}")
    assert list(compiled.state_dict()) == list(reference.state_dict())
    assert compiled.hparams.torch_compile == {"backend": "eager"}
    assert compiled.net._compiled_call_impl is not None  # nn.Module.compile was applied
    assert compiled.net.forward_train is not reference.net.forward_train


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_leaves_outputs_unchanged(backend: str) -> None:
    reference, compiled = _tiny_pair(torch_compile=f"{{backend: {backend}}}")
    for module in (reference, compiled):  # compiled graphs draw other random numbers
        for layer in module.modules():
            if isinstance(layer, torch.nn.Dropout2d):
                layer.p = 0.0
    images, labels = _batch()
    _assert_same_step(
        _loss_and_grads(reference, images, labels), _loss_and_grads(compiled, images, labels)
    )
    reference.eval()
    compiled.eval()
    with torch.no_grad():
        assert torch.allclose(reference(images), compiled(images), atol=1e-5)
