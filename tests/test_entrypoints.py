"""End to end through the real entry points: src/train.py then src/eval.py, in subprocesses."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import NARROW, ROOT, TINY, run_python, tiny_checkpoint


def run(script: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    proc = run_python(script, *args, f"paths.log_dir={tmp}/logs", f"hydra.run.dir={tmp}/run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_then_eval_round_trip(tmp_path: Path) -> None:
    # test_checkpoint=best: the tested checkpoint is the file written, evaluated again below
    args = TINY + [
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "seed=1",
        "test_checkpoint=best",
    ]
    train = run("src/train.py", args, tmp_path / "train")
    metrics = json.loads((tmp_path / "train/run/metrics.json").read_text())
    ckpt = Path(metrics["best_checkpoint"])
    assert ckpt.is_file() and "=" not in ckpt.name
    assert metrics["global_step"] == 4
    test = metrics["test"]
    assert 0.0 <= test["mIoU"] <= 1.0 and set(test["per_class"]) >= {"sky", "bird"}
    assert "best checkpoint" in train.stderr + train.stdout
    assert "mean (aAcc" in train.stdout  # the per-class table was printed
    # a quiet start: a short header instead of the composed config, no upstream noise
    out = train.stdout + train.stderr
    assert (  # the tiny quick-start backbone, not a plain resnet18
        "model    dmnet: DMHead on resnet18 with widths 32-64-128-256 and 1-1-1-1 blocks (OS8), "
        "aux FCNHead" in train.stdout
    )
    assert f"run dir  {tmp_path}/train/run" in train.stdout
    assert "filter_sizes" not in out and "💡" not in out and "LeafSpec" not in out
    assert "/-2" not in out and "Total FLOPs" not in out
    saved = OmegaConf.load(tmp_path / "train/run/config.yaml")  # the full config is saved instead
    assert list(saved.model.net.decode_head.filter_sizes) == [1, 3, 5, 7]

    # two validations (steps 2 and 4) were logged; the sanity-check pass before training was not
    rows = list(csv.DictReader((tmp_path / "train/run/csv/version_0/metrics.csv").open()))
    val_steps = [int(r["step"]) for r in rows if r.get("val/mIoU")]
    assert val_steps == [1, 3]  # Lightning logs the step index of the last batch (0-based)

    raw = torch.load(ckpt, weights_only=True)
    assert raw["hyper_parameters"]["num_classes"] == 10
    # class names and palette come from the dataset module and travel with the checkpoint
    assert raw["hyper_parameters"]["class_names"][:2] == ["sky", "grass"]
    assert len(raw["hyper_parameters"]["palette"]) == 10

    data_args = [a for a in TINY if a.startswith("data.")]
    ev = run("src/eval.py", [f"ckpt_path={ckpt}", *data_args], tmp_path / "eval")
    evaluated = json.loads((tmp_path / "eval/run/eval_metrics.json").read_text())
    assert evaluated["test"]["mIoU"] == pytest.approx(test["mIoU"], abs=1e-9)
    assert "mean (aAcc" in ev.stdout
    header = ev.stdout[ev.stdout.index("dynaseg eval of") :].splitlines()[:5]
    assert header[0] == f"dynaseg eval of {ckpt}"  # the whole checkpoint path
    assert header[1].startswith("  model    DMHead on resnet18 with widths 32-64-128-256")
    assert header[2] == (  # what eval runs on, not the training schedule
        "  data     synthetic: SyntheticScenes split 'val', 10 classes, test scale as is, batch 2 "
        "per process"
    )
    assert header[3] == "  infer    whole, cpu × 1, precision 32-true"
    assert "max_steps" not in ev.stdout and "seed" not in ev.stdout


@pytest.mark.slow  # fast tier: test_runs.py runs src/eval.py on a missing checkpoint twice
def test_eval_without_checkpoint_says_what_is_missing(tmp_path: Path) -> None:
    proc = run_python(
        "src/eval.py",
        f"ckpt_path={tmp_path}/nope.ckpt",
        f"hydra.run.dir={tmp_path}/run",
        timeout=300,
    )
    assert proc.returncode == 1
    assert "nope.ckpt" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # fast: test_datasets.py, test_check_dataset.py
def test_missing_dataset_prints_expected_layout_not_a_traceback(tmp_path: Path) -> None:
    proc = run_python(
        "src/train.py",
        "model=dmnet",
        "data=ade20k",
        "model/backbone=resnet_tiny",
        f"paths.data_dir={tmp_path}/none",
        f"hydra.run.dir={tmp_path}/run",
        "trainer=cpu",
        timeout=300,
    )
    assert proc.returncode == 1
    assert f"error: ADE20K: dataset root {tmp_path}/none/ADEChallengeData2016 does not exist" in (
        proc.stderr
    )
    assert "annotations/" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow  # fast tier: the sweeps of test_ablation_experiments.py cover this
def test_multirun_sweep_writes_one_metrics_file_per_job(tmp_path: Path) -> None:
    proc = run_python(
        "src/train.py",
        "-m",
        *TINY,
        "debug=fdr",
        "extras.print_config=false",
        "model.net.decode_head.filter_sizes=[1],[1,3]",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert 0.0 <= metrics["test"]["mIoU"] <= 1.0


@pytest.mark.slow
def test_wandb_logger_runs_offline(tmp_path: Path) -> None:
    args = [
        *TINY,
        "logger=wandb",
        "logger.wandb.offline=true",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "extras.print_config=false",
    ]
    run("src/train.py", args, tmp_path)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


@pytest.mark.slow  # fast tier: tests/models/test_inference.py (slide) and the train/eval round trip
def test_eval_with_slide_inference_override(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from dynaseg.metrics import SegmentationMetric
    from dynaseg.training.module import SegmentationModule
    from helpers import compose_config

    ckpt = tiny_checkpoint(tmp_path / "tiny.ckpt")
    data_args = [a for a in TINY if a.startswith("data.")]
    slide = [
        "model.inference.mode=slide",
        "model.inference.crop_size=[48,48]",
        "model.inference.stride=[32,32]",
    ]
    ev = run("src/eval.py", [f"ckpt_path={ckpt}", *data_args, *slide], tmp_path / "eval")
    evaluated = json.loads((tmp_path / "eval/run/eval_metrics.json").read_text())
    assert evaluated["inference"]["mode"] == "slide"
    assert evaluated["inference"]["crop_size"] == [48, 48]
    assert "  infer    slide 48x48/32x32" in ev.stdout

    # the same numbers in-process: the checkpoint's network, sliding windows, the 4 val images
    model = SegmentationModule.load_from_checkpoint(ckpt).eval()
    model.set_inference({"mode": "slide", "crop_size": [48, 48], "stride": [32, 32]})
    dm = instantiate(compose_config("eval", data_args).data)
    dm.setup("test")
    metric = SegmentationMetric(10, 255)
    with torch.no_grad():
        for batch in dm.test_dataloader():
            metric.update(model(batch["image"], batch["label"].shape[-2:]), batch["label"])
    expected = float(metric.compute()["mIoU"])
    assert evaluated["test"]["mIoU"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow  # fast: the README test runs predict.py, test_palettes.py the PNGs
def test_predict_writes_palette_pngs_and_overlays(tmp_path: Path) -> None:
    from PIL import Image

    from dynaseg.data.datasets.synthetic import SyntheticScenes
    from dynaseg.run.prediction import predict_images
    from dynaseg.training.module import SegmentationModule

    ckpt = tiny_checkpoint(tmp_path / "tiny.ckpt")
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    sizes = {"a_wide": (37, 53), "b_square": (64, 64)}  # any size, not multiples of the stride
    for i, (name, size) in enumerate(sizes.items()):
        image, _ = SyntheticScenes("val", size=size, eval_length=4).load(i)
        Image.fromarray(image).save(images_dir / f"{name}.png")

    out = tmp_path / "pred"
    run(
        "src/predict.py",
        [
            f"ckpt_path={ckpt}",
            f"inputs={images_dir}",
            f"output_dir={out}",
            "model.inference.flip=true",
        ],
        tmp_path / "run",
    )
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["palette_source"] == "checkpoint"  # hparams.palette, from the dataset module
    assert summary["inference"]["flip"] is True
    assert [Path(r["image"]).name for r in summary["images"]] == ["a_wide.png", "b_square.png"]

    model = SegmentationModule.load_from_checkpoint(ckpt).eval()
    model.set_inference({"flip": True})
    for name, (h, w) in sizes.items():
        label = Image.open(out / f"{name}.png")
        assert label.mode == "P" and label.size == (w, h)
        assert label.getpalette()[:30] == [v for c in SyntheticScenes.PALETTE for v in c]
        overlay = Image.open(out / f"{name}_overlay.png")
        assert overlay.size == (2 * w, h)
        # the label PNG holds what the model predicts for that image
        ref_dir = tmp_path / "ref" / name
        predict_images(model, [images_dir / f"{name}.png"], ref_dir, SyntheticScenes.PALETTE)
        assert (np.asarray(label) == np.asarray(Image.open(ref_dir / f"{name}.png"))).all()
        assert np.asarray(label).max() < 10
        # left half of the overlay is the input image itself
        original = np.asarray(Image.open(images_dir / f"{name}.png"))
        assert (np.asarray(overlay)[:, :w] == original).all()


# ---------------------------------------------------------------- the README's commands, as given
def fresh_clone(tmp: Path) -> Path:
    """The entry points and ``conf/`` copied into ``tmp``, as a fresh clone holds them (the
    package comes from this checkout's ``src/``): runs there write into ``tmp/logs/...``, their
    *default* run directory, instead of littering this checkout."""
    import shutil

    (tmp / "src").mkdir(parents=True)
    for script in ("train.py", "eval.py", "predict.py"):
        shutil.copy(ROOT / "src" / script, tmp / "src" / script)
    shutil.copytree(ROOT / "conf", tmp / "conf")
    return tmp


def run_in_clone(clone: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """``python src/<script> <args>`` in ``clone`` with no run-directory override and no
    ``DYNASEG_ROOT`` (the entry point sets it to its own checkout, as on a fresh clone)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "DYNASEG_ROOT"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = run_python(f"src/{script}", *args, cwd=clone, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def only_run_dir(clone: Path, task: str) -> Path:
    """The one ``logs/<task>/runs/<time>_<suffix>`` directory a run created in ``clone``."""
    runs = list((clone / "logs" / task / "runs").iterdir())
    assert len(runs) == 1, runs
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", runs[0].name), runs[0].name
    return runs[0]


def test_the_readme_commands_run_with_their_default_run_directory(tmp_path: Path) -> None:
    """README: ``python src/predict.py ckpt_path=<ckpt> inputs=photos/``, ``python src/eval.py
    ckpt_path=<ckpt>`` and ``python src/train.py experiment=quickstart`` (+ ``debug=fdr``, the
    README's one-batch run; the full recipe: the slow test below), nothing else given."""
    from PIL import Image

    from dynaseg.data.datasets.synthetic import SyntheticScenes

    clone = fresh_clone(tmp_path / "clone")
    ckpt = tiny_checkpoint(clone / "tiny.ckpt", NARROW)
    (clone / "photos").mkdir()
    for i in range(2):
        Image.fromarray(SyntheticScenes("val", size=(48, 40), eval_length=2).load(i)[0]).save(
            clone / "photos" / f"p{i}.jpg"
        )

    run_in_clone(clone, "predict.py", f"ckpt_path={ckpt}", "inputs=photos/")
    predictions = only_run_dir(clone, "predict") / "predictions"
    names = sorted(p.name for p in predictions.glob("*.png"))
    assert names == ["p0.png", "p0_overlay.png", "p1.png", "p1_overlay.png"]
    assert Image.open(predictions / "p0.png").size == (40, 48)

    run_in_clone(clone, "eval.py", f"ckpt_path={ckpt}")
    evaluated = json.loads((only_run_dir(clone, "eval") / "eval_metrics.json").read_text())
    assert 0.0 <= evaluated["test"]["mIoU"] <= 1.0 and evaluated["checkpoint"] == str(ckpt)

    run_in_clone(clone, "train.py", "experiment=quickstart", "debug=fdr")
    assert (only_run_dir(clone, "train") / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
def test_make_train_command_runs_with_its_default_run_directory(tmp_path: Path) -> None:
    """``make train`` is ``python src/train.py experiment=quickstart``: 600 steps, then test."""
    clone = fresh_clone(tmp_path / "clone")
    run_in_clone(clone, "train.py", "experiment=quickstart")
    metrics = json.loads((only_run_dir(clone, "train") / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["global_step"] == 600
    assert Path(metrics["best_checkpoint"]).is_relative_to(clone / "logs" / "train" / "runs")


@pytest.mark.parametrize("freeze", [True, False])
def test_an_entry_process_skips_only_the_final_collections(tmp_path: Path, freeze: bool) -> None:
    """``freeze_at_exit`` (every entry point): exit handlers registered later still run and files
    written before exit are whole; only cyclic garbage left at exit is not collected (its
    ``__del__`` does not run), as the control without it shows."""
    import sys

    script = f"""
import atexit
from dynaseg.run.entry import freeze_at_exit
if {freeze}:
    freeze_at_exit(); freeze_at_exit()
out = open({str(tmp_path / "out.txt")!r}, "w")
out.write("x" * 100_000)
out.close()
atexit.register(lambda: open({str(tmp_path / "handler.txt")!r}, "w").write("ran"))
class Cycle:
    def __del__(self):
        print("collected", flush=True)
a = Cycle(); a.self = a
del a
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert (tmp_path / "handler.txt").read_text() == "ran"
    assert (tmp_path / "out.txt").stat().st_size == 100_000
    assert ("collected" in proc.stdout) is not freeze
