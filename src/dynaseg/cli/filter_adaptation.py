"""Do a trained DMNet's generated filters vary between images and follow the scene zoom?

    python scripts/filter_adaptation.py RUN_DIR [--figure docs/figures/filter_adaptation.png]

RUN_DIR is a finished training run of a dynamic DMNet head on ``data=synthetic_scales`` (its
``config.yaml`` and ``metrics.json`` name the data and the checkpoint). Prints, per branch, the
share of filter energy not explained by the mean filter, and Spearman's ρ between each image's
filter spread and its scene zoom with a 95 % bootstrap CI over the validation scenes. The measures
are ``dynaseg.analysis.filter_adaptation``. Also ``python -m dynaseg.cli.filter_adaptation``,
``dynaseg-filter-adaptation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dynaseg.analysis.filter_adaptation import (
    collect_filters,
    measure_adaptation,
    plot_spread_vs_zoom,
)
from dynaseg.cli import exit_with
from dynaseg.run.checkpoints import load_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished training run directory")
    parser.add_argument("--figure", type=Path, help="write the spread-vs-zoom figure here")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)

    config, metrics = args.run_dir / "config.yaml", args.run_dir / "metrics.json"
    for f in (config, metrics):
        if not f.is_file():
            print(f"error: {f} not found; RUN_DIR must be a finished training run", file=sys.stderr)
            return 2
    ckpt = json.loads(metrics.read_text()).get("best_checkpoint")
    if not ckpt or not Path(ckpt).is_file():
        print(f"error: {metrics} names no existing best_checkpoint ({ckpt!r})", file=sys.stderr)
        return 2
    datamodule = instantiate(OmegaConf.load(config).data)
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]
    if not hasattr(dataset, "zoom_of"):
        print(
            f"error: {type(dataset).__name__} has no per-scene zoom (use data=synthetic_scales)",
            file=sys.stderr,
        )
        return 2
    model = load_module(ckpt, "best_checkpoint")
    batches = (batch["image"] for batch in datamodule.val_dataloader())
    zooms = np.array([dataset.zoom_of(i) for i in range(len(dataset))])
    measures = measure_adaptation(collect_filters(model.net, batches), zooms)
    for name, entry in measures.branches.items():
        k = entry["kernel"]
        shown = f"  spread vs zoom: {measures.correlations[f'k={k}']}" if k > 1 else ""
        print(f"{name} (k={k}): unexplained energy {entry['unexplained_energy']:.1%}{shown}")
    if args.json:
        report = {"run": str(args.run_dir), "branches": measures.branches}
        args.json.write_text(json.dumps(report, indent=2))
    if args.figure and measures.spreads:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        title = f"{len(zooms)} validation scenes"
        fig = plot_spread_vs_zoom(measures.spreads, zooms, measures.correlations, title)
        fig.savefig(args.figure, dpi=110)
        print(f"figure: {args.figure}")
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
