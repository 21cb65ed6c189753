"""Evaluate a checkpoint: ``python src/eval.py ckpt_path=... [data=...]``."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("DYNASEG_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    from dynaseg.training.recipes import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
