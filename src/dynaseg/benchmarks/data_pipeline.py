"""Training-pipeline throughput per loader worker on ADE20K-sized images.

Writes random-texture 683×512 JPEGs with ADE-style label PNGs (blobs of raw values 0..150) in the
real ``ADEChallengeData2016`` layout, then times, in the calling process (the command line and
the suite's section 5 run it with one OpenCV/torch thread = one DataLoader worker on one core):

- ``decode``: JPEG + label PNG read and label mapping (``ADE20K.load``),
- ``full``: decode + the mmseg training pipeline of ``conf/data/ade20k.yaml`` (random rescale of
  2048×512 by 0.5–2.0, 512×512 crop with the 0.75 class cap, flip, photometric distortion,
  normalise, pad, to tensor) — i.e. ``ADE20K.__getitem__``.

The command line is :mod:`dynaseg.cli.bench_data_pipeline` (``scripts/bench_data_pipeline.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from dynaseg.data.datasets import ADE20K
from dynaseg.data.transforms import build_train_transform


def write_images(root: Path, n: int, hw: tuple[int, int] = (512, 683), seed: int = 0) -> None:
    """``n`` JPEG/PNG pairs in the ADE20K layout (smooth texture + noise, blob labels)."""
    rng = np.random.default_rng(seed)
    img_dir = root / "images" / "training"
    ann_dir = root / "annotations" / "training"
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    h, w = hw
    for i in tqdm(range(n), desc="writing 683×512 JPEGs", unit="img"):
        low = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(img_dir / f"ADE_train_{i:08d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        blobs = rng.integers(0, 151, (h // 32, w // 32), dtype=np.uint8)
        label = cv2.resize(blobs, (w, h), interpolation=cv2.INTER_NEAREST)
        Image.fromarray(label).save(ann_dir / f"ADE_train_{i:08d}.png")


def time_pass(fn: Callable[[int], object], n: int, desc: str) -> float:
    """Images per second of one pass ``fn(0..n-1)``."""
    start = time.perf_counter()
    for i in tqdm(range(n), desc=desc, unit="img", leave=False):
        fn(i)
    return n / (time.perf_counter() - start)


def measure(root: Path, n_images: int, repeats: int) -> dict[str, list[float]]:
    """Images/s of each pass (``repeats`` runs each) over ``n_images`` written under ``root``."""
    if not (root / "images" / "training").is_dir():
        write_images(root, n_images)
    transform = build_train_transform((512, 512), (2048, 512), (0.5, 2.0), 0.75)
    ds = ADE20K(root, "train", transform=transform)
    n = len(ds)
    ds[0]  # warm-up (imports, allocator)
    results = {}
    for label, fn in (
        ("decode (JPEG + label PNG + mapping)", ds.load),
        ("full training pipeline", ds.__getitem__),
    ):
        results[label] = [time_pass(fn, n, f"{label} {r + 1}/{repeats}") for r in range(repeats)]
    return results
