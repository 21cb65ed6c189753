"""Check a dataset on disk against its data config before training on it.

Usage::

    python scripts/check_dataset.py data=<name> paths.data_dir=<dir> [--splits S ...] [--limit N]

Reports, per split (with the pre-flight routine of training, dynaseg.data.preflight): the number of
image/label pairs, missing images or labels, unexpected files, unreadable or truncated images,
label values that are neither a class nor the ignore index, image/label size mismatches and the
per-class pixel frequencies. Exits 1 if any error was found, 2 if the dataset (root or a split
list) is missing, 0 otherwise. Any other ``key=value`` argument is a Hydra override of the
training config (e.g. ``data.dataset.root=/elsewhere``). Also ``python -m dynaseg.cli.check_dataset``,
``dynaseg-check-dataset``; the report is :mod:`dynaseg.data.dataset_check`.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.config_schema import validate_config
from dynaseg.data.dataset_check import check_dataset
from dynaseg.run.entry import compose


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
    validate_config(cfg)  # a wrong type or range: one error line naming the key
    return check_dataset(cfg.data, args.splits, args.limit, args.workers)


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
