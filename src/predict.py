"""Predict label PNGs: ``python src/predict.py ckpt_path=... inputs=<folder|glob|list.txt|image>``."""

from omegaconf import DictConfig

from dynaseg.run.entry import entry_point


@entry_point(__file__, "predict")
def main(cfg: DictConfig) -> None:
    from dynaseg.run.prediction import predict

    predict(cfg)


if __name__ == "__main__":
    main()
