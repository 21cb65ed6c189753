"""Shared helpers of the dataset preparation scripts in ``scripts/``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm


def run_parallel(fn: Callable, jobs: list, workers: int, desc: str) -> Iterable:
    """``fn`` over ``jobs`` with a progress bar (in-process when ``workers <= 1``)."""
    bar = tqdm(total=len(jobs), desc=desc, unit="file")
    if workers <= 1:
        for job in jobs:
            yield fn(job)
            bar.update()
    else:
        with Pool(workers) as pool:
            for result in pool.imap_unordered(fn, jobs, chunksize=16):
                yield result
                bar.update()
    bar.close()


def read_list(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; expected {what} (one id per line)")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def report_missing_images(image_dir: Path, ids: list[str], what: str) -> int:
    """Exit status of a prep script: 1 (with a warning naming one file) if any listed id has no
    ``<image_dir>/<id>.jpg``, else 0."""
    missing = [i for i in ids if not (image_dir / f"{i}.jpg").is_file()]
    if missing:
        print(
            f"warning: {len(missing)} {what} ids have no image, e.g. "
            f"{image_dir / (missing[0] + '.jpg')}",
            file=sys.stderr,
        )
        return 1
    return 0
