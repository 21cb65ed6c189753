"""Train a segmentation model: ``python src/train.py model=dmnet data=ade20k`` (Hydra overrides)."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import dynaseg.runs  # noqa: F401  (registers ${run_suffix:} before Hydra composes the config)

os.environ.setdefault("DYNASEG_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    from dynaseg.errors import exit_on_user_error
    from dynaseg.training.recipes import train

    # bad input → one "error: …" line, exit 1; SIGTERM/SIGINT → where the checkpoint is, 128+sig
    results = exit_on_user_error(lambda: train(cfg)) or {}  # {}: a failed job of a sweep
    stage = results.get("test") or results.get("val") or {}
    return stage.get(cfg.get("optimized_metric", "mIoU"))


if __name__ == "__main__":
    main()
