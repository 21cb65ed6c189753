"""Performance suite: every figure is the minimum of N repeats, next to its reference *in the same run*.

Sections (``--only 1,4`` runs a subset):

1. dynamic depthwise convolution (DMNet Eq. 1 / CaC-Net's depthwise conv), forward and
   forward+backward, ``k ∈ {1,3,5,7}``, batch 2 and 8, 512 channels, 64×64: ``impl="fast"`` (on
   the CPU the compiled kernel of ``dynaseg.models.ops.native``) vs the grouped-convolution reference
   (``impl="grouped"``), timed alternately;
2. DMNet-R50-D8 train step (forward + backward + SGD, 150 classes): the current path (grouped
   dynamic conv, literal upsample + cross-entropy, the C library's allocator) vs the lean one (the
   defaults: fast conv, band-wise loss, freed CPU memory reused) vs lean + activation
   checkpointing vs the current path with freed memory reused, each in a fresh process for its peak RSS; FLOP/s of the step
   (``torch.utils.flop_counter``) as a fraction of the fp32 matrix-multiply peak measured in the
   same process; time split conv / norm / resize+loss / other (``torch.profiler``);
3. inference images/s for whole, slide and multi-scale + flip at 512² (``model.inference``), and
   the growth of the whole-image time from 256² to 1024²;
4. metric update: ``SegmentationMetric`` vs torchmetrics ``MulticlassJaccardIndex`` (150 classes,
   16×512×512), equal confusion matrices asserted;
5. data pipeline images/s (:mod:`dynaseg.benchmarks.data_pipeline`);
6. the CPU user's waits as whole processes: the quick start, one miniature job (against the
   scene cache off, same run) and a miniature sweep on 2 cores, per job and scaled to the 50-job
   Table 1 sweep (:mod:`dynaseg.benchmarks.waits`).

Prints a markdown table per section and writes everything to ``--json``. The machine may be
shared: only ratios measured in the same run mean anything, and ``min`` of N is the least disturbed
repeat. ``--quick`` uses fewer repeats (a measurement stops early once its time budget is spent),
a 2×128² train step and inference at 128² and 256²; the default is the full suite (2×512² train
step, inference up to 1024²).

The command line is :mod:`dynaseg.cli.benchmark` (``scripts/benchmark.py``); section 2 lives in
:mod:`dynaseg.benchmarks.train_step`.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from dynaseg.benchmarks.measure import conv_closures, min_times, table
from dynaseg.benchmarks.train_step import (
    NUM_CLASSES,
    bench_train_step,
    build_dmnet,
    train_step_units,
)
from dynaseg.benchmarks.waits import WAIT_RUNS, bench_waits
from dynaseg.environment import repo_root


# --------------------------------------------------------------------------- 1. dynamic conv
def bench_dynamic_conv(quick: bool, bar: tqdm) -> dict[str, Any]:
    rows = []
    for batch in (2, 8):
        for k in (1, 3, 5, 7):
            bar.set_postfix_str(f"dynamic conv B={batch} k={k}")
            gen = torch.Generator().manual_seed(k)
            x = torch.randn(batch, 512, 64, 64, generator=gen, requires_grad=True)
            w = torch.randn(batch, 512, k, k, generator=gen, requires_grad=True)
            grad = torch.randn(batch, 512, 64, 64, generator=gen)

            fwd, fwd_bwd = conv_closures(x, w, grad)
            for fn in (fwd("grouped"), fwd("fast"), fwd_bwd("grouped"), fwd_bwd("fast")):
                fn()  # warm-up: oneDNN primitives, the kernel build, allocator growth
            repeats, budget = (3, 4.0) if quick else (7, 60.0)
            f = min_times({"grouped": fwd("grouped"), "fast": fwd("fast")}, repeats, budget)
            fb = min_times(
                {"grouped": fwd_bwd("grouped"), "fast": fwd_bwd("fast")}, repeats, budget
            )
            rows.append(
                {
                    "batch": batch,
                    "k": k,
                    "fwd_grouped_ms": 1e3 * f["grouped"]["s"],
                    "fwd_fast_ms": 1e3 * f["fast"]["s"],
                    "fwd_speedup": f["grouped"]["s"] / f["fast"]["s"],
                    "fwdbwd_grouped_ms": 1e3 * fb["grouped"]["s"],
                    "fwdbwd_fast_ms": 1e3 * fb["fast"]["s"],
                    "fwdbwd_speedup": fb["grouped"]["s"] / fb["fast"]["s"],
                    "repeats": min(v["n"] for v in (*f.values(), *fb.values())),
                }
            )
            bar.update(1)
    md = table(
        [
            "B",
            "k",
            "fwd grouped ms",
            "fwd fast ms",
            "×",
            "fwd+bwd grouped ms",
            "fwd+bwd fast ms",
            "×",
            "min of",
        ],
        [
            [
                r["batch"],
                r["k"],
                f"{r['fwd_grouped_ms']:.1f}",
                f"{r['fwd_fast_ms']:.1f}",
                f"{r['fwd_speedup']:.1f}",
                f"{r['fwdbwd_grouped_ms']:.1f}",
                f"{r['fwdbwd_fast_ms']:.1f}",
                f"**{r['fwdbwd_speedup']:.1f}**",
                r["repeats"],
            ]
            for r in rows
        ],
    )
    from dynaseg.models.ops import native

    path = "compiled CPU kernel" if native.native_kernel() is not None else "convolution-based"
    md += f"\n\nfast path: {path} (`dynaseg.models.ops.native`)."
    return {"rows": rows, "fast_path": path, "markdown": md}


# --------------------------------------------------------------------------- 3. inference
MS_FLIP_SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]  # mmseg's ADE20K/Context "MS + flip" setting


def inference_modes(size: int) -> dict[str, dict[str, Any]]:
    """The three test-time modes at one image size: slide uses 3/4-size windows at half-size
    stride (2×2 windows), multi-scale + flip mmseg's six scales × {image, mirror} (12 passes)."""
    crop, stride = [3 * size // 4] * 2, [size // 2] * 2
    return {
        "whole": {"mode": "whole", "scales": [1.0], "flip": False},
        "slide": {
            "mode": "slide",
            "crop_size": crop,
            "stride": stride,
            "scales": [1.0],
            "flip": False,
        },
        "MS+flip": {"mode": "whole", "scales": MS_FLIP_SCALES, "flip": True},
    }


def bench_inference(quick: bool, bar: tqdm) -> dict[str, Any]:
    module = build_dmnet().eval()
    sizes = (128, 256) if quick else (256, 512, 768, 1024)
    modes_size = 128 if quick else 512
    repeats, budget = (3, 10.0) if quick else (5, 120.0)

    def timed(size: int, mode: str) -> float:
        module.set_inference(inference_modes(size)[mode])
        images = torch.randn(1, 3, size, size)

        def run() -> None:
            with torch.no_grad():
                module(images)

        return min_times({mode: run}, repeats, budget)[mode]["s"]

    rows = []
    base = None
    for size in sizes:  # growth of whole-image time with size
        bar.set_postfix_str(f"inference whole {size}²")
        t = timed(size, "whole")
        base = base or t
        rows.append(
            {
                "mode": "whole",
                "size": size,
                "s": t,
                "images_per_s": 1 / t,
                "relative_time": t / base,
                "pixels_relative": (size / sizes[0]) ** 2,
            }
        )
        bar.update(1)
    whole_at = next(r["s"] for r in rows if r["size"] == modes_size)
    for mode in ("slide", "MS+flip"):
        bar.set_postfix_str(f"inference {mode} {modes_size}²")
        t = timed(modes_size, mode)
        rows.append(
            {
                "mode": mode,
                "size": modes_size,
                "s": t,
                "images_per_s": 1 / t,
                "relative_time": t / whole_at,
                "pixels_relative": None,
            }
        )
        bar.update(1)
    module.set_inference(inference_modes(modes_size)["whole"])
    md = table(
        ["mode", "size", "s/image (min)", "images/s", "time ÷ reference", f"pixels ÷ {sizes[0]}²"],
        [
            [
                r["mode"],
                f"{r['size']}²",
                f"{r['s']:.2f}",
                f"{r['images_per_s']:.2f}",
                f"{r['relative_time']:.1f}",
                "" if r["pixels_relative"] is None else f"{r['pixels_relative']:.1f}",
            ]
            for r in rows
        ],
    )
    md += (
        f"\n\nReference: whole at {sizes[0]}² for the whole rows, whole at {modes_size}² for slide "
        f"({3 * modes_size // 4}² windows, stride {modes_size // 2}: 4 windows) and MS+flip (scales "
        f"{MS_FLIP_SCALES} × flip: 12 passes)."
    )
    return {"rows": rows, "markdown": md}


# --------------------------------------------------------------------------- 4. metric
def bench_metric(quick: bool, bar: tqdm) -> dict[str, Any]:
    from torchmetrics.classification import MulticlassJaccardIndex

    from dynaseg.metrics import SegmentationMetric

    bar.set_postfix_str("metric update")
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, (16, 512, 512), generator=gen)
    target[:, :32] = 255
    preds = torch.randint(0, NUM_CLASSES, (16, 512, 512), generator=gen)
    ours = SegmentationMetric(NUM_CLASSES)
    theirs = MulticlassJaccardIndex(NUM_CLASSES, ignore_index=255, average=None)
    t = min_times(
        {
            "torchmetrics": lambda: theirs.update(preds, target),
            "ours": lambda: ours.update(preds, target),
        },
        2 if quick else 7,
    )
    if not torch.equal(ours.confmat, theirs.confmat):
        raise AssertionError("metric: confusion matrices differ from torchmetrics'")
    iou_equal = torch.allclose(ours.compute()["IoU"].float(), theirs.compute(), rtol=1e-6, atol=0)
    if not iou_equal:
        raise AssertionError("metric: per-class IoU differs from torchmetrics'")
    bar.update(1)
    speedup = t["torchmetrics"]["s"] / t["ours"]["s"]
    md = table(
        ["metric update, 150 classes, 16×512²", "s (min)", "×"],
        [
            ["torchmetrics MulticlassJaccardIndex", f"{t['torchmetrics']['s']:.3f}", "1.0"],
            ["dynaseg SegmentationMetric", f"{t['ours']['s']:.3f}", f"**{speedup:.1f}**"],
        ],
    )
    md += "\n\nConfusion matrices identical, per-class IoU equal (asserted)."
    return {
        "torchmetrics_s": t["torchmetrics"]["s"],
        "ours_s": t["ours"]["s"],
        "speedup": speedup,
        "equal": True,
        "markdown": md,
    }


# --------------------------------------------------------------------------- 5. data pipeline
def bench_data(quick: bool, bar: tqdm) -> dict[str, Any]:
    import cv2

    from dynaseg.benchmarks.data_pipeline import measure

    bar.set_postfix_str("data pipeline")
    threads = torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ADEChallengeData2016"
            results = measure(root, 8 if quick else 24, 2 if quick else 5)
    finally:
        torch.set_num_threads(threads)
    bar.update(1)
    md = table(
        ["data pipeline, 683×512 JPEG, 1 thread", "images/s (best)"],
        [[label, f"{max(runs):.1f}"] for label, runs in results.items()],
    )
    return {"images_per_s": {k: max(v) for k, v in results.items()}, "markdown": md}


SECTIONS: dict[int, tuple[str, Callable[..., dict[str, Any]]]] = {
    1: ("Dynamic depthwise convolution: fast vs grouped reference", bench_dynamic_conv),
    2: ("DMNet-R50-D8 train step", bench_train_step),
    3: ("Inference", bench_inference),
    4: ("Metric update", bench_metric),
    5: ("Data pipeline", bench_data),
    6: ("The CPU user's waits: quick start, miniature job, miniature sweep", bench_waits),
}


def run_suite(
    quick: bool,
    chosen: list[int],
    json_path: Path | None = None,
    options: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the ``chosen`` sections, print one markdown table each and write the report to
    ``json_path`` (default ``logs/benchmark/<UTC time>/benchmark.json`` under the repository).
    ``options``: keyword arguments of a section's function by its number (``{2: {"rounds": 8}}``,
    :func:`bench_train_step`)."""
    options = options or {}
    units = {
        1: 8,
        2: train_step_units(quick, **options.get(2, {})),
        3: 4 if quick else 6,
        4: 1,
        5: 1,
        6: WAIT_RUNS[quick],
    }
    now = datetime.now(timezone.utc)
    run_dir = repo_root() / "logs" / "benchmark" / now.strftime("%Y-%m-%d_%H-%M-%S")
    json_path = json_path or run_dir / "benchmark.json"
    report: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "quick": quick,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "sections": {},
    }
    start = time.perf_counter()
    with tqdm(total=sum(units[s] for s in chosen), desc="benchmark", unit="step") as bar:
        for number in chosen:
            title, fn = SECTIONS[number]
            result = fn(quick, bar, **options.get(number, {}))
            result["title"] = title
            report["sections"][str(number)] = result
    report["wall_s"] = time.perf_counter() - start
    for number, result in report["sections"].items():
        print(f"\n### {number}. {result['title']}\n\n{result['markdown']}")
    print(
        f"\n{'quick' if quick else 'full'} run: {report['wall_s']:.0f} s, torch "
        f"{report['torch']}, {report['threads']} threads; results in {json_path}"
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    return report
