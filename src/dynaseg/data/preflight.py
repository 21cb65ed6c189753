"""Check a dataset on disk before training on it (and in ``scripts/check_dataset.py``).

:func:`check_split` runs :meth:`FileSegDataset.inspect` — the same label validation that loading
uses — over every sample of a split, in parallel threads (with a progress bar on an interactive
terminal only: no carriage returns in logs), and caches each sample's result by the files' size and modification time, so a second run re-reads only what
changed. It finds missing pairs, unexpected files, unreadable and truncated images, images that
are not 8-bit RGB/greyscale, image/label size mismatches and out-of-range label values.

:func:`preflight` is what the datamodule runs at the start of fit: it fails fast with the list of
bad files (``data.on_bad_sample=error``, the default) or drops them from the split and reports
them (``data.on_bad_sample=skip``; counted in ``metrics.json`` under ``bad_samples``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dynaseg.cache_files import write_atomically
from dynaseg.config_schema import check_values
from dynaseg.data.datasets.files import FileSegDataset, SampleReport
from dynaseg.errors import DatasetError

CACHE_VERSION = 1
_LISTED = 10  # files quoted in the fail-fast message


@dataclass
class SplitReport:
    """What :func:`check_split` found in one split."""

    split: str
    checked: int = 0
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    bad_indices: list[int] = field(default_factory=list)  # samples with at least one problem
    class_counts: np.ndarray | None = None  # pixels per class (+ ignore last)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_problems(self) -> int:
        return sum(len(v) for v in self.problems.values())


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dynaseg" / "preflight"


def _signature(ds: FileSegDataset, index: int) -> list[int]:
    sample = ds.samples[index]
    sig = []
    for path in (sample.image, sample.label):
        try:
            st = path.stat()
            sig += [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            sig += [-1, -1]
    return sig


def _cache_file(ds: FileSegDataset, cache_dir: Path) -> Path:
    key = f"{type(ds).__qualname__}|{ds.root.resolve()}|{ds.split}|{CACHE_VERSION}"
    return cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


def _to_cache(report: SampleReport) -> dict[str, Any]:
    counts = None if report.class_counts is None else report.class_counts.astype(int).tolist()
    size = None if report.image_size is None else list(report.image_size)
    return {"problems": report.problems, "counts": counts, "size": size}


def check_split(
    ds: FileSegDataset,
    limit: int | None = None,
    workers: int | None = None,
    cache_dir: Path | None = None,
    progress: bool | None = None,
) -> SplitReport:
    """Inspect every sample of ``ds`` (see module docstring); never raises for a bad sample.
    ``progress``: show a progress bar (default: only when stderr is an interactive terminal)."""
    if progress is None:
        progress = interactive()
    report = SplitReport(ds.split)
    for kind, msg in ds.problems:  # missing pairs, unexpected files (found when listing)
        report.problems[kind].append(msg)
    n = len(ds) if limit is None else min(limit, len(ds))
    cache_path = _cache_file(ds, cache_dir) if cache_dir is not None else None
    cache: dict[str, Any] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
    signatures = [_signature(ds, i) for i in range(n)]
    todo = [i for i in range(n) if cache.get(ds.samples[i].name, {}).get("sig") != signatures[i]]

    def inspect(i: int) -> tuple[int, dict[str, Any]]:
        return i, _to_cache(ds.inspect(i))

    workers = workers or min(8, os.cpu_count() or 1)
    if todo:
        bar = tqdm(
            total=len(todo),
            desc=f"checking {ds.split} data",
            unit="img",
            disable=not progress,
            leave=False,
        )
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, entry in pool.map(inspect, todo):
                cache[ds.samples[i].name] = {"sig": signatures[i], **entry}
                bar.update()
        bar.close()
        if cache_path is not None:
            try:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(cache_path, lambda tmp: tmp.write_text(json.dumps(cache)))
            except OSError:  # a read-only cache location only costs the next run time
                pass
    counts = np.zeros(ds.num_classes + 1, np.int64)
    for i in range(n):
        entry = cache[ds.samples[i].name]
        for kind, msg in entry["problems"]:
            report.problems[kind].append(msg)
        if entry["problems"]:
            report.bad_indices.append(i)
        if entry["counts"] is not None:
            counts += np.asarray(entry["counts"], np.int64)
        if entry["size"] is not None:
            report.image_sizes.append(tuple(entry["size"]))
    report.checked, report.class_counts = n, counts
    return report


def interactive() -> bool:
    """Whether stderr is an interactive terminal (progress bars belong there, not in logs)."""
    return sys.stderr is not None and sys.stderr.isatty()


def preflight(
    ds: FileSegDataset,
    on_bad_sample: str = "error",
    cache_dir: Path | None = None,
    progress: bool = False,
) -> SplitReport:
    """Check ``ds`` before training. ``error``: raise :class:`DatasetError` listing the bad files;
    ``skip``: drop the bad samples from ``ds`` (in place) and return the report. ``progress``:
    a progress bar per split (library use: none; the entry points ask for one on a terminal)."""
    check_values("data", {"on_bad_sample": on_bad_sample})
    report = check_split(
        ds, cache_dir=cache_dir if cache_dir else default_cache_dir(), progress=progress
    )
    if not report.n_problems:
        return report
    if on_bad_sample == "error":
        messages = [m for msgs in report.problems.values() for m in msgs]
        more = len(messages) - _LISTED
        raise DatasetError(
            f"{type(ds).__name__} split {ds.split!r} under {ds.root}: {len(messages)} bad "
            f"sample file(s) found before training:\n  "
            + "\n  ".join(messages[:_LISTED])
            + (
                f"\n  … and {more} more (python scripts/check_dataset.py lists all)"
                if more > 0
                else ""
            )
            + "\nFix or remove them, or train without them: data.on_bad_sample=skip"
        )
    bad = set(report.bad_indices)
    ds.samples = [s for i, s in enumerate(ds.samples) if i not in bad]
    return report
