"""Training-pipeline throughput per loader worker on ADE20K-sized images.

Writes ``--images`` random-texture 683×512 JPEGs with ADE-style label PNGs in the real
``ADEChallengeData2016`` layout, then times decoding and the full mmseg training pipeline in this
single process with one OpenCV/torch thread (= one DataLoader worker on one core); what is timed:
:mod:`dynaseg.benchmarks.data_pipeline`.

Each measurement is repeated ``--repeats`` times; min and median images/s are printed (this VM's
speed swings, the best run is the least disturbed one).

Usage: ``python scripts/bench_data_pipeline.py [--images 24] [--repeats 5]`` (also
``python -m dynaseg.cli.bench_data_pipeline``, ``dynaseg-bench-data``)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import NoReturn

import cv2
import torch

from dynaseg.benchmarks.data_pipeline import measure
from dynaseg.cli import exit_with


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", type=Path, help="reuse/write the images here (default: a temp dir)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.dir or Path(tmp)) / "ADEChallengeData2016"
        results = measure(root, args.images, args.repeats)
        n = len(list((root / "images" / "training").glob("*.jpg")))
        print(f"\n{n} images of 683×512, {args.repeats} repeats, 1 thread (one loader worker):")
        for label, runs in results.items():
            med = statistics.median(runs)
            print(
                f"  {label:38s} best {max(runs):6.1f} img/s   median {med:6.1f} img/s"
                f"   (worst {min(runs):.1f})"
            )
        full = results["full training pipeline"]
        print(
            f"per-worker training throughput: {statistics.median(full):.1f} img/s (median), "
            f"{max(full):.1f} img/s (best); target ≥ 40 img/s per core"
        )
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
