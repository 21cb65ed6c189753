"""Where a training run's CPU time goes, by phase (scene generation, data, forward, backward,
optimizer, validation, figures, checkpoints, start-up): what is charged to each phase and how,
:mod:`dynaseg.benchmarks.profile`.

Trains with the given ``src/train.py`` overrides in this process (loader work in-process, one
torch thread) and prints a markdown table (CPU seconds and share per phase) and the run's val/test
mIoU, so a pure-speed change can be checked for identical results in the same breath. Run it as a
fresh process: the start-up row is the one a job pays.

Usage: ``python scripts/profile_run.py <train.py overrides> --out DIR``, e.g.
``python scripts/profile_run.py experiment=quickstart trainer.max_steps=100
trainer.val_check_interval=100 --out /tmp/qs`` (also ``python -m dynaseg.cli.profile_run``,
``dynaseg-profile-run``)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with


def main(argv: list[str] | None = None) -> int:
    from dynaseg.benchmarks.profile import phase_table, profile_training

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="src/train.py overrides")
    ap.add_argument("--out", type=Path, required=True, help="the run's output directory")
    args = ap.parse_args(argv)
    profile = profile_training(args.overrides, args.out)
    print(phase_table(profile))
    print(f"metrics (mIoU): {profile['metrics']}")
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
