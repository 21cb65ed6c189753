"""Finding and loading checkpoints, with errors that name the file: a missing path, a directory, a
file that is not a Lightning checkpoint and a checkpoint of another model each get one clear message.

The one checkpoint layer: ``src/eval.py``, ``src/predict.py``, ``scripts/export_onnx.py`` and the
notebooks load through :func:`load_module` / :func:`load_checkpoint_run`, the notebooks find a run's
newest checkpoint with :func:`newest_checkpoint`; a module built outside training (converted
weights, a test's model) is written with :func:`save_module`.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn

from dynaseg.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from dynaseg.models.state_dicts import diff_state_dicts
from dynaseg.run.directories import checkpoint_file
from dynaseg.training.module import SegmentationModule

if TYPE_CHECKING:
    from dynaseg.data.base import SegmentationDataset


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (``weights_only``, memory-mapped) after checking it is
    one: a dict with ``state_dict`` and ``hyper_parameters``."""
    ckpt = checkpoint_file(path, key)
    size = ckpt.stat().st_size
    if not zipfile.is_zipfile(ckpt):  # torch.save writes a zip archive; its index is at the end
        raise CheckpointError(
            f"{key}='{ckpt}' is not a checkpoint ({size} bytes, not a torch.save zip archive; a "
            "truncated copy?); expected a .ckpt file written by src/train.py"
        )
    try:
        data = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        ValueError,
        IndexError,
        KeyError,
        OSError,
    ) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(
            f"{key}='{ckpt}' is a damaged checkpoint ({size} bytes; torch.load: {reason}); "
            "expected a .ckpt file written by src/train.py"
        ) from None
    if not isinstance(data, dict) or "state_dict" not in data:
        kind = (
            type(data).__name__ if not isinstance(data, dict) else f"dict with {sorted(data)[:6]}"
        )
        raise CheckpointError(
            f"{key}='{ckpt}' is a torch file ({kind}) but not a Lightning checkpoint; expected "
            "'state_dict' and 'hyper_parameters' (a .ckpt file written by src/train.py)"
        )
    if "hyper_parameters" not in data:
        raise CheckpointError(
            f"{key}='{ckpt}' has weights but no 'hyper_parameters'; expected a .ckpt file written "
            "by src/train.py (a bare state_dict cannot be evaluated or resumed)"
        )
    return data


def head_targets(net: dict[str, Any]) -> dict[str, str]:
    """``{"backbone": name, "decode_head": class, ...}`` of a network config (for messages)."""
    out = {}
    for part in ("backbone", "decode_head", "auxiliary_head"):
        node = net.get(part)
        if isinstance(node, dict):
            out[part] = str(node.get("name") or node.get("_target_", "?")).rsplit(".", 1)[-1]
        elif node is None:
            out[part] = "none"
    return out


def check_same_model(ckpt: dict[str, Any], model: nn.Module, path: str | Path, key: str) -> None:
    """The checkpoint's weights must fit ``model`` (same parameter names and shapes); otherwise say
    which model the checkpoint holds and which the config builds."""
    diff = diff_state_dicts(ckpt["state_dict"], model.state_dict())
    if not diff:
        return
    hp = ckpt.get("hyper_parameters", {})
    theirs_desc = head_targets(hp.get("net", {}) or {})
    ours_desc = head_targets(getattr(model, "hparams", {}).get("net", {}) or {})
    raise CheckpointError(
        f"{key}='{path}' holds another model ({theirs_desc}) than the config builds "
        f"({ours_desc}): {'; '.join(diff.problems('checkpoint', 'model'))}; expected a checkpoint "
        "of the same model=… and head settings"
    )


def load_module(path: str | Path, key: str = "ckpt_path") -> SegmentationModule:
    """The :class:`~dynaseg.training.module.SegmentationModule` of a checkpoint (on the CPU), after
    :func:`read_checkpoint` has checked that the file is one (errors name ``key`` and the file)."""
    ckpt = checkpoint_file(path, key)
    read_checkpoint(ckpt, key)
    return SegmentationModule.load_from_checkpoint(ckpt, map_location="cpu")


def save_module(module: SegmentationModule, path: str | Path) -> Path:
    """Write ``module`` as a Lightning checkpoint at ``path`` (parent folders created), the file
    :func:`load_module` reads: its weights and hyper-parameters, as training writes them, without
    a training step (a converted or freshly built module)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        max_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def newest_checkpoint(runs_dir: str | Path = "logs/train/runs") -> Path:
    """The most recently written best checkpoint (not ``last.ckpt``) under ``runs_dir``."""
    runs_dir = Path(runs_dir)
    found = [p for p in runs_dir.glob("*/checkpoints/*.ckpt") if p.name != "last.ckpt"]
    if not found:
        found = list(runs_dir.glob("*/checkpoints/*.ckpt"))
    if not found:
        raise CheckpointNotFoundError(
            f"no checkpoint under '{runs_dir}/*/checkpoints/' — train one first (`make train`) or "
            "set the checkpoint path"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def load_checkpoint_run(
    checkpoint: str | Path, data_overrides: Sequence[str] = (), split: str = "val"
) -> tuple[SegmentationModule, SegmentationDataset]:
    """Load a checkpoint (eval mode) and the dataset split it was validated on.

    The data configuration is the one stored with the run (``<run dir>/.hydra/config.yaml``,
    which Hydra writes next to ``checkpoints/``), with ``data_overrides`` (dotlist, e.g.
    ``["data.dataset.eval_length=20"]``, or ``["paths.data_dir=/datasets"]``) applied on top.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    checkpoint = checkpoint_file(checkpoint, "checkpoint")
    stored = checkpoint.parent.parent / ".hydra" / "config.yaml"
    if not stored.is_file():
        raise ConfigError(
            f"no stored run config at '{stored}' (a training run dir holds .hydra/config.yaml "
            "beside checkpoints/); keep the checkpoint in its run directory"
        )
    cfg = OmegaConf.load(stored)
    cfg.merge_with_dotlist(list(data_overrides))
    OmegaConf.update(cfg, "paths.output_dir", str(checkpoint.parent.parent), force_add=True)
    OmegaConf.update(cfg, "paths.work_dir", str(Path.cwd()), force_add=True)
    model = load_module(checkpoint, "checkpoint")
    datamodule = instantiate(cfg.data)
    return model.eval(), datamodule.make_dataset(split)
