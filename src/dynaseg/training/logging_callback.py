"""One callback that logs what a segmentation run shows, to whichever loggers are configured.

Already logged elsewhere, to every logger: the main and auxiliary losses (``train/loss_decode``,
``train/loss_aux``, ``train/loss``) and val ``aAcc``/``mIoU``/``mAcc`` plus per-class IoU by
:class:`~dynaseg.training.module.SegmentationModule`; the learning rate of every parameter group
by Lightning's ``LearningRateMonitor`` (``conf/callbacks/default.yaml``). This callback adds:

- once at the start of fitting: parameters and MACs (``torch.utils.flop_counter`` on one
  validation image, MACs = FLOPs / 2, :mod:`dynaseg.complexity`), the git commit and the hardware
  (the logger's hyper-parameters, i.e. W&B's run config);
- after every validation: ``val/mIoU_best`` (best so far), the per-class IoU/Acc table
  (``wandb.Table`` for W&B, text for TensorBoard, and ``per_class_val.csv`` in the run
  directory) and the row-normalised confusion-matrix figure;
- every ``images_every_n_validations`` validations: a fixed set of validation images with ground
  truth and prediction (W&B segmentation masks with class labels; a PNG overlay figure in the run
  directory and, for TensorBoard, as an image);
- after testing: the test per-class table and confusion matrix.

Figures are also written as PNGs under ``<run dir>/figures/`` whatever the logger, so a CSV-only
run has them too. Nothing is logged during Lightning's sanity-check validation.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from dynaseg import visualization as vis
from dynaseg.complexity import count_flops, count_params
from dynaseg.palettes import model_palette
from dynaseg.training.loggers import finish_loggers, git_info, hardware_info


class SegmentationLogging(L.Callback):
    """Tables, figures, example predictions and model size for every configured logger.

    Args:
        output_dir: the run directory (``per_class_<stage>.csv`` and ``figures/`` go there).
        num_images: how many validation images to show (evenly spaced over the split, the same
            images at every validation).
        images_every_n_validations: show them every N validations (0 = never).
        confusion_matrix: log the confusion-matrix figure.
        complexity: log parameters and MACs at the start of fitting.
    """

    def __init__(
        self,
        output_dir: str | Path,
        num_images: int = 4,
        images_every_n_validations: int = 1,
        confusion_matrix: bool = True,
        complexity: bool = True,
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.num_images = int(num_images)
        self.images_every_n_validations = int(images_every_n_validations)
        self.confusion_matrix = confusion_matrix
        self.complexity = complexity
        self.validations = 0
        self.best_miou: float | None = None

    # ------------------------------------------------------------------ state (resume)
    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations, "best_miou": self.best_miou}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))
        self.best_miou = state_dict.get("best_miou")

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_run_info(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metric = getattr(pl_module, "val_metric", None)
        if trainer.sanity_checking or metric is None or not metric.update_called:
            return
        # Runs before the module's own on_validation_epoch_end (Lightning calls callbacks first);
        # torchmetrics caches compute(), so the module reuses this (process-summed) result.
        results = metric.compute()
        miou = float(results["mIoU"])
        if not math.isnan(miou) and (self.best_miou is None or miou > self.best_miou):
            self.best_miou = miou
        if self.best_miou is not None:
            pl_module.log("val/mIoU_best", self.best_miou)
        self.validations += 1
        show = (
            self.images_every_n_validations > 0
            and (self.validations - 1) % self.images_every_n_validations == 0
        )
        self._log_stage(trainer, pl_module, "val", results, show_images=show)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metric = getattr(pl_module, "test_metric", None)
        if metric is None or not metric.update_called:
            return
        self._log_stage(trainer, pl_module, "test", metric.compute(), show_images=False)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        finish_loggers(trainer.loggers, exit_code=1)

    # ------------------------------------------------------------------ pieces
    @rank_zero_only
    def _log_run_info(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        info: dict[str, Any] = {"git": git_info(), "hardware": hardware_info()}
        info["hardware"]["devices"] = trainer.num_devices
        info["hardware"]["num_nodes"] = trainer.num_nodes
        info["hardware"]["precision"] = str(trainer.precision)
        net = getattr(pl_module, "net", pl_module)
        scalars: dict[str, float] = {}
        if self.complexity:
            dataset = self._val_dataset(trainer)
            params = count_params(net)
            scalars["model/params"] = float(params)
            info["complexity"] = {"params": params}
            if dataset is not None and len(dataset) > 0:
                device = next(net.parameters()).device
                sample = dataset[0]
                image = sample["image"].unsqueeze(0).to(device)
                scene = {  # per-image inputs a head reads (the zoom oracle's zoom)
                    k: torch.as_tensor(sample[k]).reshape(1).to(device)
                    for k in getattr(net, "scene_inputs", ())
                    if k in sample
                }
                try:
                    flops, _ = count_flops(net, image, *([None, scene] if scene else []))
                except Exception as err:  # a report must never stop training
                    rank_zero_warn(f"SegmentationLogging: MACs not counted ({err})")
                else:
                    scalars["model/MACs"] = flops / 2
                    info["complexity"].update(
                        {"MACs": flops // 2, "MACs_input": list(image.shape[-2:])}
                    )
        for lg in trainer.loggers:
            lg.log_hyperparams({"run_info": info})
            if scalars:
                lg.log_metrics(scalars, step=trainer.global_step)

    @staticmethod
    def _val_dataset(trainer: L.Trainer) -> Any:
        datasets = getattr(trainer.datamodule, "datasets", None) or {}
        if datasets.get("val") is not None:
            return datasets["val"]
        loaders = trainer.val_dataloaders
        return getattr(loaders, "dataset", None)

    @rank_zero_only
    def _log_stage(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        stage: str,
        results: dict[str, torch.Tensor],
        show_images: bool,
    ) -> None:
        step = trainer.global_step
        names = list(getattr(pl_module, "class_names", None) or pl_module.hparams["class_names"])
        iou, acc = results["IoU"].cpu().numpy(), results["Acc"].cpu().numpy()
        rows = [[name, _none_if_nan(iou[i]), _none_if_nan(acc[i])] for i, name in enumerate(names)]
        self._append_csv(stage, step, rows)
        figures = self.output_dir / "figures"
        table_key = f"{stage}/per_class"
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_table(key=table_key, columns=["class", "IoU", "Acc"], data=rows, step=step)
            elif isinstance(lg, TensorBoardLogger):
                lg.experiment.add_text(table_key, _markdown_table(rows), step)

        if self.confusion_matrix and "confmat" in results:
            fig = vis.plot_confusion_matrix(
                results["confmat"],
                names,
                title=f"{stage} confusion matrix, step {step} (rows: ground truth, normalised)",
            )
            vis.save_figure(fig, figures / f"{stage}_confusion_step{step:06d}.png")
            self._log_figure(trainer.loggers, f"{stage}/confusion_matrix", fig, step)

        if show_images and self.num_images > 0:
            self._log_examples(trainer, pl_module, names, step)

    def _log_examples(
        self, trainer: L.Trainer, pl_module: L.LightningModule, names: list[str], step: int
    ) -> None:
        dataset = self._val_dataset(trainer)
        if dataset is None or len(dataset) == 0:
            return
        indices = vis.evenly_spaced(self.num_images, len(dataset))
        samples = vis.predict_samples(pl_module, dataset, indices)
        palette, _ = model_palette(pl_module, dataset)
        ignore_index = int(getattr(pl_module, "ignore_index", 255))
        fig = vis.plot_predictions(
            [s.image for s in samples],
            [s.label for s in samples],
            [s.prediction for s in samples],
            names,
            palette,
            ignore_index,
            names=[s.name for s in samples],
        )
        vis.save_figure(fig, self.output_dir / "figures" / f"val_predictions_step{step:06d}.png")
        class_labels = {i: n for i, n in enumerate(names)}
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                gt_labels = {**class_labels, ignore_index: "ignored"}
                lg.log_image(
                    key="val/predictions",
                    images=[s.image for s in samples],
                    masks=[
                        {
                            "prediction": {
                                "mask_data": s.prediction.astype(np.int32),
                                "class_labels": class_labels,
                            },
                            "ground_truth": {
                                "mask_data": s.label.astype(np.int32),
                                "class_labels": gt_labels,
                            },
                        }
                        for s in samples
                    ],
                    caption=[s.name for s in samples],
                    step=step,
                )
            elif isinstance(lg, TensorBoardLogger):
                lg.experiment.add_image(
                    "val/predictions", vis.figure_to_array(fig), step, dataformats="HWC"
                )

    @staticmethod
    def _log_figure(loggers: list[Logger], key: str, fig: Any, step: int) -> None:
        array = None
        for lg in loggers:
            if isinstance(lg, WandbLogger | TensorBoardLogger) and array is None:
                array = vis.figure_to_array(fig)
            if isinstance(lg, WandbLogger):
                lg.log_image(key=key, images=[array], step=step)
            elif isinstance(lg, TensorBoardLogger):
                lg.experiment.add_image(key, array, step, dataformats="HWC")

    def _append_csv(self, stage: str, step: int, rows: list[list[Any]]) -> None:
        """Long-format ``step,class,IoU,Acc`` rows appended to ``per_class_<stage>.csv``."""
        path = self.output_dir / f"per_class_{stage}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["step", "class", "IoU", "Acc"])
            for name, iou, acc in rows:
                writer.writerow(
                    [step, name, "" if iou is None else iou, "" if acc is None else acc]
                )


def _none_if_nan(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _markdown_table(rows: list[list[Any]]) -> str:
    def pct(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.2f}"

    lines = ["| class | IoU | Acc |", "|---|---|---|"]
    lines += [f"| {name} | {pct(iou)} | {pct(acc)} |" for name, iou, acc in rows]
    return "\n".join(lines)
