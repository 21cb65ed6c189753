#!/usr/bin/env python
"""Check a dataset on disk against its data config before training on it.

Usage::

    python scripts/check_dataset.py data=<name> paths.data_dir=<dir> [--splits S ...] [--limit N]

Reports, per split (with the pre-flight routine of training, dynaseg.data.preflight): the number of
image/label pairs, missing images or labels, unexpected files, unreadable or truncated images,
label values that are neither a class nor the ignore index, image/label size mismatches and the
per-class pixel frequencies. Exits 1 if any error was found, 2 if the dataset (root or a split
list) is missing, 0 otherwise. Any other ``key=value`` argument is a Hydra override of the
training config (e.g. ``data.dataset.root=/elsewhere``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from hydra.utils import instantiate

from dynaseg.data.datasets.files import FileSegDataset
from dynaseg.data.preflight import check_split
from dynaseg.errors import DatasetError, DatasetNotFoundError
from dynaseg.run.entry import compose

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--splits", nargs="+", help="splits to check (default: the config's splits)")
    ap.add_argument("--limit", type=int, help="check at most N samples per split")
    ap.add_argument("--workers", type=int, help="parallel threads (default: CPUs, at most 8)")
    args, overrides = ap.parse_known_args(argv)
    unknown = [o for o in overrides if "=" not in o]
    if unknown:
        ap.error(f"unrecognised arguments {unknown}; expected Hydra overrides key=value")
    cfg = compose("train", overrides)
    data = cfg.data
    splits = args.splits or list(dict.fromkeys([data.train_split, data.val_split, data.test_split]))
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
        report = check_split(ds, args.limit, workers=args.workers)  # the pre-flight routine
        problems, counts = report.problems, report.class_counts
        n_bad = sum(len(v) for v in problems.values())
        print(
            f"\n[{split}] {len(ds)} image/label pairs"
            + (f" (+{len(ds.problems)} incomplete)" if ds.problems else "")
            + (f", checked {args.limit}" if args.limit and args.limit < len(ds) else "")
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


if __name__ == "__main__":
    sys.exit(main())
