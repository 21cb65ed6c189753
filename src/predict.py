"""Predict label PNGs: ``python src/predict.py ckpt_path=... inputs=<folder|glob|list.txt|image>``."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("DYNASEG_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict.yaml")
def main(cfg: DictConfig) -> None:
    from dynaseg.errors import UserError
    from dynaseg.prediction import predict

    try:
        predict(cfg)
    except UserError as err:  # bad input: the message says what was expected, no traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
