"""The train and evaluate recipes behind ``src/train.py`` and ``src/eval.py``.

Each reads top to bottom: seed → datamodule, model, callbacks, loggers, trainer → fit/test →
metrics JSON in the run directory → the metric a sweeper optimises.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from dynaseg.config_schema import check_values
from dynaseg.data.preflight import interactive
from dynaseg.errors import (
    ConfigError,
    NonFiniteLossError,
    TrainingInterrupted,
    causes,
    user_error_in,
)
from dynaseg.run.checkpoints import (
    check_same_model,
    checkpoint_file,
    load_module,
    read_checkpoint,
)
from dynaseg.run.console import (
    print_config,
    print_eval_header,
    print_run_header,
    save_config,
    silence_upstream_noise,
)
from dynaseg.run.cpu_memory import apply_cpu_memory_policy
from dynaseg.run.fault_tolerance import RUN_STATE_KEY, FaultTolerance
from dynaseg.run.manifest import actual_run, check_recipe
from dynaseg.run.provenance import RunClock, describe_run
from dynaseg.run.sweep_jobs import (
    completed_before,
    prepare_parallel_job,
    resume_checkpoint,
)
from dynaseg.training.logging_callback import finish_loggers
from dynaseg.training.module import SegmentationModule


def start_run(cfg: DictConfig) -> None:
    """Quiet upstream noise, keep freed CPU memory for reuse unless
    ``extras.cpu_memory_reuse=false`` (:mod:`dynaseg.run.cpu_memory`), save the composed config in
    the run directory, print it only if asked (``extras.print_config=true``)."""
    silence_upstream_noise()
    apply_cpu_memory_policy(cfg)
    if rank_zero_only.rank == 0 and cfg.get("paths", {}).get("output_dir"):
        save_config(cfg, Path(cfg.paths.output_dir))
    if cfg.get("extras", {}).get("print_config"):
        print_config(cfg)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Callbacks/loggers are dicts of named ``_target_`` entries; ``null`` entries are skipped."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


@rank_zero_only
def write_metrics(path: Path, payload: dict[str, Any]) -> None:
    """Write the run's machine-readable metrics (NaN → null so the file is strict JSON)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(payload), indent=2))
    rank_zero_info(f"metrics written to {path}")


def stage_results(model: SegmentationModule, trainer: L.Trainer, stage: str) -> dict | None:
    """The stage's metrics from the module, or — after ``ddp_spawn``, whose workers' module state
    does not come back — the scalars Lightning sends back in ``callback_metrics``."""
    if model.last_results.get(stage):
        return model.last_results[stage]
    prefix = f"{stage}/"
    scalars = {
        k[len(prefix) :]: float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith(prefix)
    }
    return scalars or None


def dataset_info(datamodule: Any) -> dict[str, Any]:
    """What the model learns from the dataset module (through the datamodule): the number of
    classes, their names and colours. Stored in the checkpoint's hyper-parameters."""
    return {
        "num_classes": datamodule.num_classes,
        "class_names": datamodule.class_names,
        "palette": datamodule.palette,
    }


def build_model(cfg: DictConfig, datamodule: Any | None = None) -> SegmentationModule:
    """The LightningModule of ``cfg.model`` for the dataset of ``cfg.data`` (built from the config
    if no datamodule is given; nothing is read from disk)."""
    datamodule = datamodule if datamodule is not None else instantiate(cfg.data)
    return instantiate(cfg.model, _recursive_=False, **dataset_info(datamodule))


def build_datamodule(cfg: DictConfig) -> Any:
    """The datamodule of ``cfg.data`` as the entry points run it: the pre-flight check shows its
    progress bars on an interactive terminal only (library use of ``setup()`` never does)."""
    datamodule = instantiate(cfg.data)
    if hasattr(datamodule, "progress_bars"):
        datamodule.progress_bars = interactive()
    return datamodule


WANDB_TARGETS = ("WandbLogger", "loggers.wandb_logger")


def build_trainer(cfg: DictConfig, resume: dict[str, Any] | None = None) -> L.Trainer:
    """The trainer with the config's callbacks and loggers; ``resume`` (the run state of the
    checkpoint being resumed) makes a W&B logger continue the checkpoint's W&B run."""
    loggers = cfg.get("logger")
    wandb_id = (resume or {}).get("wandb_run_id")
    if loggers and wandb_id:
        loggers = loggers.copy()
        for name, node in loggers.items():
            # Lightning's WandbLogger itself, or our factory in conf/logger/wandb.yaml
            if node is not None and str(node.get("_target_", "")).endswith(WANDB_TARGETS):
                with open_dict(node):
                    node.id, node.resume = wandb_id, "allow"
                rank_zero_info(f"W&B: continuing run {wandb_id} ({name})")
    return instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(loggers) or False,
    )


def best_checkpoint(trainer: L.Trainer) -> str:
    """Path of the best checkpoint of the run's ``ModelCheckpoint`` ("" if none was written)."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            return cb.best_model_path
    return ""


def validated_checkpoints(
    trainer: L.Trainer, model: SegmentationModule, val: dict | None, step: int
) -> dict[str, Any]:
    """The validation scores of the two checkpoints ``test_checkpoint`` chooses between, each
    ``{step, mIoU}``: ``last``, the last validation of the fit (the end of fitting: the module
    validates the final step), and ``best``, the checkpoint ``ModelCheckpoint`` kept as best on
    its monitored metric (``val/mIoU`` by default; with another ``monitor`` its score is under
    ``score`` and ``mIoU`` is null), with its ``path``; ``best`` is null when none was written."""
    last_step = model.last_val_step if model.last_val_step is not None else step
    last = {"step": last_step, "mIoU": (val or {}).get("mIoU")}
    callback = next(
        (c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None
    )
    if callback is None or not callback.best_model_path:
        return {"last": last, "best": None}
    score = callback.best_model_score
    score = None if score is None else float(score)
    best = {
        "step": int(read_checkpoint(callback.best_model_path)["global_step"]),
        "mIoU": score if callback.monitor == "val/mIoU" else None,
        "path": callback.best_model_path,
    }
    if callback.monitor != "val/mIoU":
        best.update(monitor=callback.monitor, score=score)
    return {"last": last, "best": best}


def resolve_test_checkpoint(cfg: DictConfig, best: str | None = None) -> str:
    """``cfg.test_checkpoint``: ``"last"`` (the weights at the end of fitting, mmseg's practice)
    or ``"best"`` (the checkpoint best on val, which biases a val-split "test" upwards); checked
    before fitting (``best=None``), resolved after it."""
    which = cfg.get("test_checkpoint", "last")
    check_values("", {"test_checkpoint": which})  # one of config_schema.TEST_CHECKPOINTS
    if which == "best" and best is not None and not best:
        rank_zero_info("test_checkpoint=best but no best checkpoint was written: testing the last")
        return "last"
    return which


def run_test_variants(
    cfg: DictConfig,
    model: SegmentationModule,
    trainer: L.Trainer,
    datamodule: Any,
    ckpt_path: str | None,
) -> dict[str, Any]:
    """Test the same weights again under each of ``cfg.test_variants`` (name → inference keys,
    e.g. ``{flip: {flip: true}, ms_flip: {scales: [...], flip: true}}``): the papers' Flip/MS rows
    of one trained model. Results by name, each with the inference it used; the module's own
    inference is restored afterwards."""
    variants = cfg.get("test_variants") or {}
    if not variants:
        return {}
    original = dict(model.hparams.get("inference") or {})
    out: dict[str, Any] = {}
    try:
        for name, overrides in variants.items():
            if "." in str(name):
                raise ConfigError(f"test_variants: name {name!r} must not contain '.'")
            inference = model.set_inference(overrides)
            rank_zero_info(f"test variant {name}: {inference.describe()}")
            model.last_results.pop("test", None)
            trainer.test(
                model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, verbose=False
            )
            out[str(name)] = {
                **(stage_results(model, trainer, "test") or {}),
                "inference": inference.to_dict(),
            }
    finally:
        model.hparams["inference"] = original
    return out


def last_good_checkpoint(trainer: L.Trainer) -> str | None:
    """The newest checkpoint written before a failure (interval, validation or interrupt)."""
    paths = [getattr(cb, "last_model_path", "") for cb in trainer.checkpoint_callbacks]
    paths += [
        str(cb.last_path)
        for cb in trainer.checkpoint_callbacks
        if isinstance(cb, FaultTolerance) and cb.last_path
    ]
    existing = [Path(p) for p in paths if p and Path(p).is_file()]
    return str(max(existing, key=lambda p: p.stat().st_mtime)) if existing else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the last (``test_checkpoint=last``) or best-on-val checkpoint; returns the
    metrics written to ``metrics.json`` (``reported_checkpoint`` says which one was tested and
    holds both checkpoints' validation step and mIoU: ``.last``, ``.best``).

    A run that raises still writes ``metrics.json`` (``status: failed``, the error, provenance),
    so a sweep's table flags it instead of losing it; the exception then propagates. A sweep job
    completed in an earlier launch of the same sweep returns that result without training.
    """
    previous = completed_before(cfg)
    if previous is not None:
        return previous
    resume = resume_checkpoint(cfg)
    if resume is not None:  # a job of this sweep stopped early: continue it exactly
        with open_dict(cfg):
            cfg.ckpt_path = resume
    prepare_parallel_job()
    clock = RunClock()
    try:
        return _fit_and_test(cfg, clock)
    except Exception as err:
        try:
            interrupted = any(isinstance(e, TrainingInterrupted) for e in causes(err))
            cause = user_error_in(err) or err  # the user's error, not Hydra's wrapper around it
            failure = {
                "status": "interrupted" if interrupted else "failed",
                "error": f"{type(cause).__name__}: {cause}",
                "provenance": {**describe_run(cfg), **clock.elapsed(), "steps": None},
            }
            write_metrics(Path(cfg.paths.output_dir) / "metrics.json", failure)
        except Exception as record_err:  # never hide the run's own error behind this one
            rank_zero_info(f"could not record the failure in metrics.json: {record_err}")
        raise


def _fit_and_test(cfg: DictConfig, clock: RunClock) -> dict[str, Any]:
    start_run(cfg)
    resolve_test_checkpoint(cfg)  # a typo fails now, not after fitting
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "high"))

    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    print_run_header(cfg, "train", model, datamodule)
    ckpt_path, resume = cfg.get("ckpt_path"), None
    if ckpt_path:  # resume: check the file before Lightning does (its errors name no file)
        ckpt = read_checkpoint(ckpt_path)
        check_same_model(ckpt, model, ckpt_path, "ckpt_path")
        resume = ckpt.get(RUN_STATE_KEY) or {}
        ckpt_path = str(checkpoint_file(ckpt_path))
        rank_zero_info(f"resuming from {ckpt_path} (step {ckpt.get('global_step', '?')})")
        del ckpt
    trainer = build_trainer(cfg, resume)
    manifest = check_recipe(cfg.get("manifest"), actual_run(cfg, trainer.world_size))
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLossError as err:  # name the checkpoint that is still good
        last = last_good_checkpoint(trainer)
        kept = f"; last good checkpoint: {last}" if last else "; no checkpoint was written yet"
        raise NonFiniteLossError(f"{err}{kept}") from None
    results: dict[str, Any] = {"val": stage_results(model, trainer, "val")}

    best = best_checkpoint(trainer)
    which = resolve_test_checkpoint(cfg, best)
    # None: the weights at the end of fitting (mmseg reports the last iteration's model)
    test_ckpt = best if which == "best" else None
    if cfg.get("test"):
        trainer.test(
            model, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True, verbose=False
        )
        results["test"] = stage_results(model, trainer, "test")
    variants = run_test_variants(cfg, model, trainer, datamodule, test_ckpt)
    if variants:
        results["test_variants"] = variants
    results["best_checkpoint"] = best or None
    step = trainer.global_step
    if step == 0 and best:  # ddp_spawn: the workers' trainer state does not come back
        step = int(read_checkpoint(best)["global_step"])
    results["reported_checkpoint"] = {
        "test": which if (cfg.get("test") or variants) else None,
        "path": test_ckpt,
        "val": "last validation of the fit",
        **validated_checkpoints(trainer, model, results["val"], step),
    }
    bad = getattr(datamodule, "bad_samples", None)
    if bad:  # data.on_bad_sample=skip: what was left out, reported again at the end
        results["bad_samples"] = {
            split: {"count": len(m), "problems": m} for split, m in bad.items()
        }
        counts = ", ".join(f"{len(m)} in {split}" for split, m in bad.items())
        rank_zero_info(f"skipped bad samples: {counts} (listed in metrics.json)")
    results["global_step"] = step
    results["status"] = "completed"
    results["provenance"] = {**describe_run(cfg, model), **clock.elapsed(), "steps": step}
    if manifest is not None:
        results["manifest"] = manifest
    write_metrics(Path(cfg.paths.output_dir) / "metrics.json", results)
    if best:
        rank_zero_info(f"best checkpoint: {best}")
    finish_loggers(trainer.loggers)  # one W&B run per job, also within a multirun
    return results


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on the test split; prints the table, writes ``eval_metrics.json``."""
    start_run(cfg)
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        raise ConfigError(
            "eval needs a checkpoint: python src/eval.py ckpt_path=/path/to/file.ckpt"
        )
    ckpt_path = checkpoint_file(ckpt)
    model = load_module(ckpt_path)  # a clear message if the file is not a checkpoint
    datamodule = build_datamodule(cfg)
    if model.hparams.num_classes != datamodule.num_classes:
        raise ConfigError(
            f"checkpoint '{ckpt_path}' predicts {model.hparams.num_classes} classes but "
            f"{datamodule.dataset_class.__name__} (data=...) has {datamodule.num_classes}; "
            "evaluate it on the dataset it was trained for"
        )
    inference = model.set_inference(cfg.get("model", {}).get("inference"))
    trainer = build_trainer(cfg)
    print_eval_header(cfg, ckpt_path, model, datamodule, inference, trainer)
    trainer.test(model, datamodule=datamodule, verbose=False)
    results = {
        "test": model.last_results.get("test"),
        "checkpoint": str(ckpt_path),
        "inference": inference.to_dict(),
    }
    write_metrics(Path(cfg.paths.output_dir) / "eval_metrics.json", results)
    finish_loggers(trainer.loggers)
    return results
