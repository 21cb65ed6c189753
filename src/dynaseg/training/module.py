"""The LightningModule: owns loss, optimiser, schedule and metrics; the network is a plain module."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from dynaseg.config_schema import check_values, plain_values
from dynaseg.errors import ConfigError, NonFiniteLossError
from dynaseg.metrics import SegmentationMetric, format_metrics_table
from dynaseg.models.inference import InferenceConfig, infer
from dynaseg.training.losses import resized_cross_entropy
from dynaseg.training.schedules import epochs_to_steps, poly_lr_lambda, step_lr_lambda
from dynaseg.training.weights import (
    format_init_report,
    freeze_parameters,
    frozen_norm_layers,
    load_init_weights,
)


def to_plain(value: Any) -> Any:
    """OmegaConf containers → plain dicts/lists, so checkpoints load with ``weights_only=True``."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def safe_metric_name(name: str) -> str:
    """Class names become metric keys and file names: keep ``[A-Za-z0-9_.-]`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"


class SegmentationModule(L.LightningModule):
    """Semantic segmentation training with mmseg's recipe.

    Loss: cross-entropy (``ignore_index``) on the decode logits plus ``aux_loss_weight`` × the same on
    each auxiliary head (deep supervision), every logit map resized to the label size first.
    Optimiser: any ``torch.optim`` class (default SGD) with per-parameter-group LR multipliers
    (``lr_mult``: parameter-name prefix → factor, e.g. ``{decode_head: 10}``). Schedule: poly decay per
    optimizer step over the run's total steps (:func:`poly_lr_lambda`).

    All constructor arguments are plain Python values (the network is a Hydra config dict built here),
    so ``SegmentationModule.load_from_checkpoint(path)`` works under torch's ``weights_only`` loading.

    Args:
        net: Hydra config dict of the network (``dynaseg.models.Segmentor``); ``num_classes`` is
            handed to it (and through it to every head) from here.
        num_classes: number of classes (the training recipe passes the datamodule's).
        class_names: names for the per-class table and metric keys (from the dataset module).
        palette: RGB colour per class, for figures and predicted label maps (from the dataset).
        ignore_index: label value excluded from loss and metric.
        aux_loss_weight: weight of each auxiliary head's loss.
        avg_non_ignore: average the cross-entropy over the non-ignored pixels only. ``False``
            (mmseg's default) divides by all pixels, ignored and padded ones included.
        optimizer: ``{"_target_": "torch.optim.SGD", "lr": ..., ...}``.
        lr_mult: parameter-name prefix → LR multiplier (first matching prefix wins).
        layer_decay: layer-wise LR decay of the backbone (BEiT, Bao et al., arXiv:2106.08254
            §2.3; mmseg's ``LayerDecayOptimizerConstructor``): a block ``k`` layers below the top
            trains at ``layer_decay**k`` × the LR, and its 1-D weights (norms, biases) and the
            model's no-decay tensors (position embeddings, relative position tables) without
            weight decay — timm's ``param_groups_layer_decay`` on the timm model
            (:meth:`~dynaseg.models.backbones.TimmBackbone.layer_decay_groups`). ``None``: off.
        scheduler: ``{"name": "poly", "power": 0.9, "min_lr": 1e-4}`` (``name`` defaults to
            poly; ``min_lr: 0`` is the papers' poly to zero), ``{"name": "step", "milestones":
            [steps], "gamma": 0.1}`` or ``{"name": "step", "milestone_epochs": [60], ...}``
            (epochs of this run's training loader, converted to steps at fit time); ``None`` for
            a constant LR.
        init_from: ``{"path": ckpt, "prefixes": [name prefixes] | None, "strict": bool}``:
            network weights loaded from a checkpoint when fitting starts (before a resumed
            ``ckpt_path`` is restored, which then wins); unmatched keys are reported
            (:func:`~dynaseg.training.weights.load_init_weights`).
        freeze: parameter-name prefixes (in ``net``) excluded from training; the batch-norm
            layers under them stay in eval mode, so their statistics do not change either.
        lean_loss: compute each cross-entropy band by band without keeping the label-size logits
            (:func:`~dynaseg.training.losses.resized_cross_entropy`); ``False`` is the literal
            ``F.cross_entropy(resize(logits))`` path (same values, more memory), kept for comparison.
        loss_align_corners: ``align_corners`` of the bilinear resize of the logits to the label
            size in the loss (mmseg: the head's ``align_corners``, ``True`` in its Cityscapes
            769×769 configs; the configs tie it to ``inference.align_corners``).
        channels_last: keep the network's weights and the input images in ``channels_last``
            (NHWC) memory format — faster convolutions on tensor-core GPUs; same outputs.
        torch_compile: ``torch.compile`` the network's forward and training forward; ``True`` or a
            dict of ``torch.compile`` arguments (e.g. ``{"mode": "max-autotune"}``). State-dict keys
            are unchanged (the modules are compiled in place).
        inference: test-time mode for validation, test and prediction (``whole``/``slide``,
            scales, flip; :class:`~dynaseg.models.inference.InferenceConfig`). ``None``: whole
            image, one scale, no flip.
    """

    def __init__(
        self,
        net: dict[str, Any],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        ignore_index: int = 255,
        aux_loss_weight: float = 0.4,
        avg_non_ignore: bool = False,
        optimizer: dict[str, Any] | None = None,
        lr_mult: dict[str, float] | None = None,
        layer_decay: float | None = None,
        scheduler: dict[str, Any] | None = None,
        init_from: dict[str, Any] | None = None,
        freeze: Sequence[str] | None = None,
        lean_loss: bool = True,
        loss_align_corners: bool = False,
        channels_last: bool = False,
        torch_compile: bool | dict[str, Any] = False,
        inference: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        net = to_plain(net)
        class_names = list(to_plain(class_names) or [f"class_{i}" for i in range(num_classes)])
        if len(class_names) != num_classes:
            raise ConfigError(
                f"class_names has {len(class_names)} entries but num_classes is {num_classes}"
            )
        if palette is not None and len(palette) != num_classes:
            raise ConfigError(
                f"palette has {len(palette)} colours but num_classes is {num_classes}"
            )
        optimizer = to_plain(optimizer) or {"_target_": "torch.optim.SGD", "lr": 0.01}
        check_values(  # types and ranges: dynaseg.config_schema (library use; runs check earlier)
            "model",
            plain_values(
                optimizer=optimizer,
                scheduler=to_plain(scheduler),
                aux_loss_weight=aux_loss_weight,
                lr_mult=to_plain(lr_mult),
                layer_decay=layer_decay,
            ),
        )
        self.save_hyperparameters(
            {
                "net": net,
                "num_classes": int(num_classes),
                "class_names": class_names,
                "palette": [list(map(int, c)) for c in to_plain(palette)] if palette else None,
                "ignore_index": int(ignore_index),
                "aux_loss_weight": float(aux_loss_weight),
                "avg_non_ignore": bool(avg_non_ignore),
                "optimizer": optimizer,
                "lr_mult": dict(to_plain(lr_mult) or {}),
                "layer_decay": None if layer_decay is None else float(layer_decay),
                "scheduler": to_plain(scheduler),
                "init_from": to_plain(init_from) or None,
                "freeze": list(to_plain(freeze) or []),
                "lean_loss": bool(lean_loss),
                "loss_align_corners": bool(loss_align_corners),
                "channels_last": bool(channels_last),
                "torch_compile": to_plain(torch_compile),
                "inference": InferenceConfig.from_dict(to_plain(inference)).to_dict(),
            }
        )
        self.net = instantiate(net, num_classes=int(num_classes))
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if torch_compile:
            options = dict(torch_compile) if isinstance(torch_compile, dict) else {}
            self.net.compile(**options)  # in place: parameter names keep no "_orig_mod." prefix
            self.net.forward_train = torch.compile(self.net.forward_train, **options)
            self.net.decode_logits = torch.compile(self.net.decode_logits, **options)
        self.frozen_parameters = freeze_parameters(self.net, self.hparams.freeze)
        self.init_report: dict[str, Any] | None = None
        self.class_names = class_names
        self.ignore_index = ignore_index
        self.val_metric = SegmentationMetric(num_classes, ignore_index)
        self.test_metric = self.val_metric.clone()
        self.last_results: dict[str, dict[str, Any]] = {}
        self.last_val_step: int | None = None  # the optimizer step of the last validation

    # ------------------------------------------------------------------ inference
    @property
    def inference(self) -> InferenceConfig:
        """The test-time mode (``hparams.inference``) used by validation, test and prediction."""
        return InferenceConfig.from_dict(self.hparams.get("inference"))

    def set_inference(self, overrides: dict[str, Any] | None) -> InferenceConfig:
        """Replace the keys of ``hparams.inference`` given (not ``None``) in ``overrides``; the
        eval/predict entry points use it for ``model.inference.*=...`` on the command line."""
        merged = dict(self.hparams.get("inference") or {})
        merged.update({k: v for k, v in (to_plain(overrides) or {}).items() if v is not None})
        cfg = InferenceConfig.from_dict(merged)
        self.hparams["inference"] = cfg.to_dict()
        return cfg

    def forward(
        self,
        images: torch.Tensor,
        out_size: tuple[int, int] | None = None,
        scene: dict[str, torch.Tensor] | None = None,
    ):
        """Class scores at ``out_size`` (default: the input size) by the configured inference
        mode: logits for a single pass, mean softmax probabilities for multi-scale/flip.
        ``scene``: the per-image inputs some head reads (:meth:`scene_of`)."""
        logits_fn = self.net.decode_logits
        if scene:
            logits_fn = functools.partial(self.net.decode_logits, scene=scene)
        return infer(logits_fn, self.prepare_images(images), self.inference, out_size)

    def scene_of(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The batch entries the network's heads read per image besides the image
        (``Segmentor.scene_inputs``, e.g. the miniature's ``zoom``); ``{}`` for most heads."""
        names = getattr(self.net, "scene_inputs", ())
        missing = [k for k in names if k not in batch]
        if missing:
            raise ConfigError(
                f"model.net.decode_head reads {missing} per image, but the dataset's batches "
                f"carry only {sorted(batch)}; use a dataset that provides it (data=synthetic_scales "
                "or synthetic_scales_fixed give 'zoom')"
            )
        return {k: batch[k] for k in names}

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """The memory format the network expects (``channels_last`` if switched on)."""
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # ------------------------------------------------------------------ init_from / freeze
    def setup(self, stage: str) -> None:
        init = self.hparams.init_from
        if stage != "fit" or not init or self.init_report is not None:
            return
        unknown = set(init) - {"path", "prefixes", "strict"}
        if "path" not in init or unknown:
            raise ConfigError(
                "model.init_from must be {path: <checkpoint>, prefixes: [..] | null, strict: "
                f"true|false}}, got keys {sorted(init)}"
            )
        self.init_report = load_init_weights(
            self.net, init["path"], init.get("prefixes"), bool(init.get("strict", True))
        )
        rank_zero_info(format_init_report(init["path"], self.init_report))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Weights restored from a checkpoint of this module supersede init_from: a later fit of
        # the loaded module (fine-tuning, or resuming through ckpt_path) must not reload them.
        if self.hparams.init_from:
            self.init_report = {"restored_from_checkpoint": True}

    def train(self, mode: bool = True) -> SegmentationModule:
        """``nn.Module.train``, except that frozen batch-norm layers stay in eval mode."""
        super().train(mode)
        if mode:
            for norm in frozen_norm_layers(self.net, self.hparams.get("freeze", [])):
                norm.eval()
        return self

    def on_train_start(self) -> None:
        self.train()  # Lightning keeps the modes it finds: put frozen norms in eval once here

    # ------------------------------------------------------------------ training
    def compute_losses(
        self, logits: list[torch.Tensor], labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        losses = {}
        for i, out in enumerate(logits):
            name = "loss_decode" if i == 0 else f"loss_aux{i if len(logits) > 2 else ''}"
            weight = 1.0 if i == 0 else self.hparams.aux_loss_weight
            align_corners = bool(self.hparams.get("loss_align_corners", False))
            if self.hparams.get("lean_loss", True):
                per_pixel = resized_cross_entropy(out, labels, self.ignore_index, align_corners)
            else:
                up = F.interpolate(
                    out, size=labels.shape[-2:], mode="bilinear", align_corners=align_corners
                )
                per_pixel = F.cross_entropy(
                    up.float(),
                    labels,
                    ignore_index=self.ignore_index,
                    reduction="none",
                )
            if self.hparams.avg_non_ignore:
                ce = per_pixel.sum() / (labels != self.ignore_index).sum().clamp(min=1)
            else:
                ce = per_pixel.mean()
            losses[name] = weight * ce
        return losses

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        labels = batch["label"]
        images, scene = self.prepare_images(batch["image"]), self.scene_of(batch)
        logits = self.net.forward_train(images, scene) if scene else self.net.forward_train(images)
        losses = self.compute_losses(logits, labels)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            parts = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at step {self.global_step} ({parts}); expected a "
                "finite loss: lower model.optimizer.lr or check the data"
            )
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, on_step=True)
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Validate the final weights, as mmseg's iteration-based loop does at its last iteration
        # whatever the interval: Lightning validates only every `val_check_interval` steps, so a
        # run with max_steps=700 and val every 500 would end unvalidated after step 500 — and one
        # with max_steps below the interval would test its last weights without any validation.
        # `should_stop` makes Lightning's loop validate after this step (once, if it was due anyway).
        trainer = self.trainer
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, Any], metric: SegmentationMetric) -> None:
        labels = batch["label"]
        logits = self(batch["image"], labels.shape[-2:], self.scene_of(batch))
        metric.update(logits, labels)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metric)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metric)

    def _finish(self, stage: str, metric: SegmentationMetric) -> None:
        if self.trainer.sanity_checking:  # never report the sanity-check pass
            metric.reset()
            return
        results = metric.compute()
        metric.reset()
        scalars = {k: float(results[k]) for k in ("mIoU", "mAcc", "aAcc")}
        self.log_dict({f"{stage}/{k}": v for k, v in scalars.items()}, sync_dist=False)
        per_class = {}
        for i, name in enumerate(self.class_names):
            key = safe_metric_name(name)
            iou, acc = float(results["IoU"][i]), float(results["Acc"][i])
            per_class[name] = {"IoU": iou, "Acc": acc}
            if not math.isnan(iou):
                self.log(f"{stage}/IoU.{key}", iou)
        # the matrix itself (rows: ground truth, columns: prediction, classes in per_class's
        # order): pair confusions are read from it (docs/ablations.md, Evidence round 2, R3)
        confusion = results["confmat"].tolist()
        self.last_results[stage] = {
            **scalars,
            "per_class": per_class,
            "confusion_matrix": confusion,
        }
        if stage == "val":
            self.last_val_step = int(self.global_step)
        self._print_table(results, f"{stage} @ step {self.global_step}")

    @rank_zero_only
    def _print_table(self, results: dict[str, torch.Tensor], title: str) -> None:
        from rich.console import Console

        Console().print(format_metrics_table(results, self.class_names, title))

    def on_validation_epoch_end(self) -> None:
        self._finish("val", self.val_metric)

    def on_test_epoch_end(self) -> None:
        self._finish("test", self.test_metric)

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """One group per ``lr_mult`` prefix (in order) plus the rest, each with its ``lr``."""
        base_lr = float(self.hparams.optimizer.get("lr", 0.01))
        mults = self.hparams.lr_mult
        buckets: dict[str, list[torch.nn.Parameter]] = {p: [] for p in mults}
        rest: list[torch.nn.Parameter] = []
        layered = self.layer_decay_groups(base_lr)
        taken = {id(p) for group in layered for p in group["params"]}
        for name, param in self.net.named_parameters():
            if not param.requires_grad or id(param) in taken:
                continue
            prefix = next((p for p in mults if name.startswith(p)), None)
            (buckets[prefix] if prefix is not None else rest).append(param)
        groups = [{"params": rest, "lr": base_lr, "name": "default"}] if rest else []
        modules = dict(self.net.named_modules())
        for prefix, params in buckets.items():
            if not params and prefix in modules:  # present, no weights: e.g. no auxiliary head
                continue
            if not params:
                raise ConfigError(
                    f"model.lr_mult: no parameter name starts with '{prefix}'; top-level modules "
                    f"are {[n for n, _ in self.net.named_children()]}"
                )
            groups.append({"params": params, "lr": base_lr * float(mults[prefix]), "name": prefix})
        return groups + layered

    def layer_decay_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """The backbone's parameter groups under ``layer_decay`` (empty when it is off)."""
        rate = self.hparams.get("layer_decay")
        if rate is None:
            return []
        backbone = self.net.backbone
        if not hasattr(backbone, "layer_decay_groups"):
            raise ConfigError(
                f"model.layer_decay={rate}: backbone {type(backbone).__name__} has no "
                "layer_decay_groups() (TimmBackbone has); set model.layer_decay=null"
            )
        weight_decay = float(self.hparams.optimizer.get("weight_decay", 0.0))
        return [
            {
                "params": group["params"],
                "lr": base_lr * group["lr_scale"],
                "weight_decay": group["weight_decay"],
                "name": f"backbone.{group['name']}",
            }
            for group in backbone.layer_decay_groups(rate, weight_decay)
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        opt_cfg = dict(self.hparams.optimizer)
        optimizer = get_class(opt_cfg.pop("_target_"))(self.parameter_groups(), **opt_cfg)
        sched_cfg = self.hparams.scheduler
        if not sched_cfg:
            return {"optimizer": optimizer}
        name = sched_cfg.get("name", "poly")
        if name == "poly":
            total = int(self.trainer.estimated_stepping_batches)
            lambdas = [
                poly_lr_lambda(
                    g["lr"],
                    total,
                    float(sched_cfg.get("power", 0.9)),
                    float(sched_cfg.get("min_lr", 1e-4)),
                )
                for g in optimizer.param_groups
            ]
        else:  # "step": the names are checked against config_schema.SCHEDULES at construction
            lambdas = step_lr_lambda(self._milestone_steps(sched_cfg), sched_cfg.get("gamma", 0.1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def _milestone_steps(self, sched_cfg: dict[str, Any]) -> list[int]:
        """The step schedule's milestones in optimizer steps (``milestones``), or converted from
        ``milestone_epochs`` with this run's optimizer steps per epoch."""
        if ("milestones" in sched_cfg) == ("milestone_epochs" in sched_cfg):
            raise ConfigError(
                "model.scheduler (step): give exactly one of milestones (optimizer steps) or "
                f"milestone_epochs, got keys {sorted(sched_cfg)}"
            )
        if "milestones" in sched_cfg:
            return [int(m) for m in sched_cfg["milestones"]]
        if self.trainer.train_dataloader is None:  # as estimated_stepping_batches does
            self.trainer.fit_loop.setup_data()
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches):
            raise ConfigError(
                "model.scheduler.milestone_epochs needs a training loader with a length; "
                "give model.scheduler.milestones in optimizer steps instead"
            )
        per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches)
        return [epochs_to_steps(float(e), per_epoch) for e in sched_cfg["milestone_epochs"]]
