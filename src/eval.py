"""Evaluate a checkpoint: ``python src/eval.py ckpt_path=... [data=...]``."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("DYNASEG_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    from dynaseg.errors import UserError
    from dynaseg.training.recipes import evaluate

    try:
        evaluate(cfg)
    except UserError as err:  # bad input: the message says what was expected, no traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
