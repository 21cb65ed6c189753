"""What a run shows on the console: a short header, a step-aware progress bar, no upstream noise.

The full composed config is not printed (hundreds of lines before anything useful); it is saved
to ``<run dir>/config.yaml`` and, under Hydra, ``<run dir>/.hydra/``. ``extras.print_config=true``
prints it as before.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

# Upstream messages that say nothing about the run: Lightning's advertising tips and a torch
# pytree deprecation raised inside Lightning itself (not actionable by our users).
NOISE_MESSAGES = ("💡 Tip:",)
NOISE_WARNINGS = (r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in NOISE_MESSAGES)


def silence_upstream_noise() -> None:
    """Drop Lightning's tips and known upstream deprecation warnings (idempotent)."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    from lightning_utilities.core import rank_zero

    # Lightning's rank-zero messages are logged on whichever of these loggers was set last.
    names = (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning_utilities.core.rank_zero",
        "lightning.pytorch",
        "lightning.fabric",
    )
    loggers = [logging.getLogger(n) for n in names] + [rank_zero.log]
    for logger in loggers:
        for holder in (logger, *logger.handlers):
            if not any(isinstance(f, _DropNoise) for f in holder.filters):
                holder.addFilter(_DropNoise())


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar for iteration schedules: ``max_epochs=-1`` (train until
    ``max_steps``) is shown as ``Epoch 7`` instead of ``Epoch 7/-2``."""

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        description = f"Epoch {current_epoch}"
        if max_epochs is not None and max_epochs > 0:
            description += f"/{max_epochs - 1}"
        if len(self.validation_description) > len(description):
            description = f"{description:{len(self.validation_description)}}"
        return description


def hydra_choices() -> dict[str, str]:
    """The config-group choices of this run (``model``, ``data``, ``experiment`` …), if under Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return {k: str(v) for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def save_config(cfg: DictConfig, output_dir: Path) -> Path:
    """Write the composed config (resolved where it can be) to ``<output_dir>/config.yaml``."""
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # e.g. a `???` value that the run itself will report
        text = OmegaConf.to_yaml(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "config.yaml"
    path.write_text(text)
    return path


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    """Show the whole composed config (``extras.print_config=true``)."""
    try:
        print(OmegaConf.to_yaml(cfg, resolve=True))
    except Exception:
        print(OmegaConf.to_yaml(cfg))


def _size(value: Any) -> str:
    return "×".join(str(v) for v in value) if value else "as is"


def describe_backbone(model: Any) -> str:
    """The backbone as configured: its timm name plus the widths/blocks a config overrides
    (``resnet18 with widths 32-64-128-256 and 1-1-1-1 blocks``, the quick-start's tiny ResNet),
    and the output stride."""
    backbone = model.net.backbone
    name = getattr(backbone, "name", type(backbone).__name__)
    node = (model.hparams.get("net") or {}).get("backbone") or {}
    changed = []
    if node.get("channels"):
        changed.append("widths " + "-".join(str(c) for c in node["channels"]))
    if node.get("layers"):
        changed.append("-".join(str(n) for n in node["layers"]) + " blocks")
    text = f"{name} with {' and '.join(changed)}" if changed else name
    return f"{text} (OS{getattr(backbone, 'output_stride', '?')})"


def _model_line(model: Any, choice: str | None) -> str:
    net = model.net
    params = sum(p.numel() for p in model.parameters()) / 1e6
    aux = ", ".join(type(h).__name__ for h in net.auxiliary_head) or "none"
    named = f"{choice}: " if choice else ""
    return (
        f"  model    {named}{type(net.decode_head).__name__} on {describe_backbone(model)}, "
        f"aux {aux}, {params:.2f}M params"
    )


@rank_zero_only
def print_run_header(
    cfg: DictConfig, task: str, model: Any | None = None, datamodule: Any | None = None
) -> None:
    """What a training run does (model, data, schedule) and where it writes."""
    choices = hydra_choices()
    lines = [
        f"dynaseg {task}"
        + (f" · experiment={choices['experiment']}" if "experiment" in choices else "")
    ]
    if model is not None:
        lines.append(_model_line(model, choices.get("model")))
    if datamodule is not None:
        data = cfg.data
        lines.append(
            f"  data     {choices.get('data', 'data')}: {datamodule.dataset_class.__name__}, "
            f"{datamodule.num_classes} classes, "
            f"crop {_size(data.get('crop_size'))}, batch {data.get('batch_size')} per process, "
            f"{datamodule.num_workers} workers"
        )
    trainer = cfg.get("trainer", {})
    lines.append(
        f"  trainer  max_steps {trainer.get('max_steps')}, val every "
        f"{trainer.get('val_check_interval')}, {trainer.get('accelerator')} × "
        f"{trainer.get('devices')}, precision {trainer.get('precision')}, seed {cfg.get('seed')}"
    )
    out = cfg.get("paths", {}).get("output_dir")
    lines.append(f"  run dir  {out}  (full config: config.yaml)")
    print("\n".join(lines), flush=True)


@rank_zero_only
def print_eval_header(
    cfg: DictConfig, checkpoint: Any, model: Any, datamodule: Any, inference: Any, trainer: Any
) -> None:
    """What an evaluation does: which checkpoint, on which split of which data, how it infers
    (mode, device, precision) — no training schedule."""
    choices = hydra_choices()
    device = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    split = datamodule.splits["test"]
    lines = [
        f"dynaseg eval of {checkpoint}",
        _model_line(model, None),
        f"  data     {choices.get('data', 'data')}: {datamodule.dataset_class.__name__} split "
        f"'{split}', {datamodule.num_classes} classes, test scale "
        f"{_size(cfg.data.get('test_scale'))}, batch {datamodule.val_batch_size} per process",
        f"  infer    {inference.describe()}, {device} × {trainer.num_devices}, "
        f"precision {trainer.precision}",
        f"  run dir  {cfg.get('paths', {}).get('output_dir')}  (full config: config.yaml)",
    ]
    print("\n".join(lines), flush=True)
