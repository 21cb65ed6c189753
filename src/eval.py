"""Evaluate a checkpoint: ``python src/eval.py ckpt_path=... [data=...]``."""

from omegaconf import DictConfig

from dynaseg.run.entry import entry_point


@entry_point(__file__, "eval")
def main(cfg: DictConfig) -> None:
    from dynaseg.run.recipes import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
