"""Train a segmentation model: ``python src/train.py model=dmnet data=ade20k`` (Hydra overrides)."""

from omegaconf import DictConfig

from dynaseg.run.entry import entry_point


@entry_point(__file__, "train")
def main(cfg: DictConfig) -> float | None:
    from dynaseg.run.recipes import train

    results = train(cfg)  # SIGTERM/SIGINT → where the checkpoint is, exit 128 + signal
    stage = results.get("test") or results.get("val") or {}
    return stage.get(cfg.get("optimized_metric", "mIoU"))


if __name__ == "__main__":
    main()
