"""SegmentationLogging + loggers: what a tiny run with logger=[csv,wandb] (W&B offline) leaves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from dynaseg.training.module import SegmentationModule
from helpers import wandb_records

CLASSES = ["sky", "grass", "water", "road", "building", "car", "boat", "tree", "bird", "balloon"]


def history_rows(run_file: Path) -> list[dict[str, object]]:
    rows = []
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def test_wandb_offline_run_holds_history_table_confusion_and_masks(tiny_wandb_run: Path) -> None:
    runs = list((tiny_wandb_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = runs[0]
    history = history_rows(next(run.glob("run-*.wandb")))

    # metrics history: both validations (with best-so-far mIoU), losses are logged by the module
    val = [r for r in history if "val/mIoU" in r]
    assert len(val) == 2
    assert all(0.0 <= r["val/mIoU"] <= 1.0 for r in val)
    best = [r["val/mIoU_best"] for r in val]
    assert best == [max(r["val/mIoU"] for r in val[: i + 1]) for i in range(2)]
    assert any("model/MACs" in r and r["model/MACs"] > 1e6 for r in history)
    assert any(r.get("model/params", 0) > 1e5 for r in history)

    # per-class table: a wandb.Table per validation whose rows match the per-class CSV
    tables = sorted((run / "files" / "media" / "table" / "val").glob("per_class_*.table.json"))
    assert len(tables) == 2
    last = json.loads(tables[-1].read_text())
    assert last["columns"] == ["class", "IoU", "Acc"]
    assert [row[0] for row in last["data"]] == CLASSES
    csv_rows = list(csv.DictReader((tiny_wandb_run / "per_class_val.csv").open()))
    assert [r["class"] for r in csv_rows] == CLASSES * 2
    assert [int(r["step"]) for r in csv_rows] == [2] * 10 + [4] * 10
    for (name, iou, _), row in zip(last["data"], csv_rows[10:], strict=True):
        assert row["class"] == name
        assert (iou is None and row["IoU"] == "") or abs(float(row["IoU"]) - iou) < 1e-12
    # the mean of the logged per-class IoU is the logged mIoU
    ious = [iou for _, iou, _ in last["data"] if iou is not None]
    assert abs(sum(ious) / len(ious) - val[-1]["val/mIoU"]) < 1e-6

    # confusion-matrix figure (W&B image and run-dir PNG) for both validations and the test
    confusion = [r for r in history if "val/confusion_matrix/_type" in r]
    assert len(confusion) == 2
    for name in (
        "val_confusion_step000002",
        "val_confusion_step000004",
        "test_confusion_step000004",
    ):
        image = Image.open(tiny_wandb_run / "figures" / f"{name}.png")
        assert image.width > 300 and image.height > 300

    # fixed validation images with prediction and ground-truth masks and class labels
    masks = [r for r in history if "val/predictions/all_masks" in r]
    assert len(masks) == 2
    entry = masks[-1]
    assert entry["val/predictions/count"] == 4
    assert entry["val/predictions/captions"] == [f"val_{i:06d}" for i in range(4)]
    first = entry["val/predictions/all_masks"][0]
    assert set(first) == {"prediction", "ground_truth"}
    mask_file = run / "files" / first["prediction"]["path"]
    assert mask_file.is_file()
    mask = Image.open(mask_file)
    assert mask.size == (80, 80)  # the evaluation image size (TINY: 80x80 scenes)
    assert (tiny_wandb_run / "figures" / "val_predictions_step000004.png").is_file()

    # run config: the resolved Hydra config, the git commit and the hardware; W&B keeps the
    # masks' class labels there too
    config: dict[str, object] = {}
    for record in wandb_records(next(run.glob("run-*.wandb"))):
        if record.WhichOneof("record_type") == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
    assert {"model", "data", "trainer", "run_info"} <= set(config)
    info = config["run_info"]
    assert set(info["git"]) == {"commit", "dirty"}
    assert info["hardware"]["torch"] and info["hardware"]["cpus"] >= 1
    assert info["complexity"]["MACs"] > 1e6 and info["complexity"]["MACs_input"] == [80, 80]
    labels = config["_wandb"]["mask/class_labels"]
    prediction = labels["val/predictions_wandb_delimeter_prediction"]["value"]
    ground_truth = labels["val/predictions_wandb_delimeter_ground_truth"]["value"]
    assert prediction == {str(i): name for i, name in enumerate(CLASSES)}
    assert ground_truth == {**prediction, "255": "ignored"}


def test_csv_logger_gets_best_miou_and_model_size(tiny_wandb_run: Path) -> None:
    rows = list(csv.DictReader((tiny_wandb_run / "csv" / "version_0" / "metrics.csv").open()))
    best = [float(r["val/mIoU_best"]) for r in rows if r.get("val/mIoU_best")]
    miou = [float(r["val/mIoU"]) for r in rows if r.get("val/mIoU")]
    assert len(best) == 2 and best[-1] == max(miou)
    params = [float(r["model/params"]) for r in rows if r.get("model/params")]
    metrics = json.loads((tiny_wandb_run / "metrics.json").read_text())
    model = SegmentationModule.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu")
    assert params == [sum(p.numel() for p in model.net.parameters())]
