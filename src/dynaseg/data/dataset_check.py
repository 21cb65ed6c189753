"""The dataset checker's report (``scripts/check_dataset.py`` = :mod:`dynaseg.cli.check_dataset`):
per split, with the pre-flight routine of training (:func:`dynaseg.data.preflight.check_split`),
the number of image/label pairs, every kind of fault found (a few messages each) and the
per-class pixel frequencies.
"""

from __future__ import annotations

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from dynaseg.data.datasets.files import FileSegDataset
from dynaseg.data.preflight import check_split
from dynaseg.errors import DatasetError, DatasetNotFoundError

KINDS = {
    "missing_image": "missing images",
    "missing_label": "images without a label",
    "unexpected_file": "unexpected files",
    "unreadable": "unreadable files",
    "truncated": "truncated images",
    "bad_format": "images that are not 8-bit RGB/greyscale",
    "bad_values": "labels with values outside the classes/ignore",
    "size_mismatch": "image/label size mismatches",
}
SHOW = 5  # messages printed per kind


def print_frequencies(names: list[str], counts: np.ndarray) -> None:
    total = counts.sum()
    if total == 0:
        return
    print("  pixel frequency per class (% of all pixels):")
    cells = [
        f"{n[:18]:>18s} {100 * c / total:6.2f}" for n, c in zip(names, counts[:-1], strict=True)
    ]
    cells.append(f"{'(ignore 255)':>18s} {100 * counts[-1] / total:6.2f}")
    for k in range(0, len(cells), 4):
        print("   " + "  ".join(cells[k : k + 4]))
    absent = [n for n, c in zip(names, counts[:-1], strict=True) if c == 0]
    if absent:
        print(
            f"  note: {len(absent)} class(es) never occur: {', '.join(absent[:10])}"
            + (" …" if len(absent) > 10 else "")
        )


def check_dataset(
    data: DictConfig,
    splits: list[str] | None = None,
    limit: int | None = None,
    workers: int | None = None,
) -> int:
    """Check the dataset of a composed ``data`` config on disk and print the report. Returns
    the exit status: 2 if the dataset (root or a split list) is missing, 1 if any error was
    found, 0 otherwise. ``splits`` defaults to the config's train/val/test splits."""
    splits = splits or list(dict.fromkeys([data.train_split, data.val_split, data.test_split]))
    print(f"dataset: {data.dataset._target_} at {data.dataset.get('root', '-')}")
    n_errors, missing = 0, False
    factory = instantiate(data.dataset)  # a partial: (split=..., transform=...) -> dataset
    for split in splits:
        try:
            ds = factory(split=split, transform=None, strict=False)
        except DatasetNotFoundError as err:
            print(f"\n[{split}] ERROR: {err}")
            missing = True
            continue
        except DatasetError as err:
            print(f"\n[{split}] ERROR: {err}")
            n_errors += 1
            continue
        if not isinstance(ds, FileSegDataset):
            print(f"[{split}] {type(ds).__name__} is not an on-disk dataset; nothing to check")
            continue
        report = check_split(ds, limit, workers=workers)  # the pre-flight routine
        problems, counts = report.problems, report.class_counts
        n_bad = sum(len(v) for v in problems.values())
        print(
            f"\n[{split}] {len(ds)} image/label pairs"
            + (f" (+{len(ds.problems)} incomplete)" if ds.problems else "")
            + (f", checked {limit}" if limit and limit < len(ds) else "")
            + (f" — {n_bad} error(s)" if n_bad else " — OK")
        )
        for kind, title in KINDS.items():
            msgs = problems.get(kind, [])
            if msgs:
                print(f"  {len(msgs)} {title}:")
                for m in msgs[:SHOW]:
                    print(f"    - {m}")
                if len(msgs) > SHOW:
                    print(f"    … and {len(msgs) - SHOW} more")
        print_frequencies(list(ds.CLASSES), counts)
        n_errors += n_bad
    if missing:
        print("\nFAILED: dataset or split list missing (see above)")
        return 2
    print(f"\n{'FAILED' if n_errors else 'OK'}: {n_errors} error(s)")
    return 1 if n_errors else 0
