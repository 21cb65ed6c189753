"""Train a segmentation model: ``python src/train.py model=dmnet data=ade20k`` (Hydra overrides)."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("DYNASEG_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    from dynaseg.errors import UserError
    from dynaseg.training.recipes import train

    try:
        results = train(cfg)
    except UserError as err:  # bad input: the message says what was expected, no traceback
        sys.exit(f"error: {err}")
    stage = results.get("test") or results.get("val") or {}
    return stage.get(cfg.get("optimized_metric", "mIoU"))


if __name__ == "__main__":
    main()
