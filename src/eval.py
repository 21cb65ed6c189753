"""Evaluate a checkpoint: ``python src/eval.py ckpt_path=... [data=...]``."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import dynaseg.runs  # noqa: F401  (registers ${run_suffix:} before Hydra composes the config)

os.environ.setdefault("DYNASEG_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    from dynaseg.errors import exit_on_user_error
    from dynaseg.training.recipes import evaluate

    exit_on_user_error(lambda: evaluate(cfg))  # bad input → one "error: …" line, exit 1


if __name__ == "__main__":
    main()
