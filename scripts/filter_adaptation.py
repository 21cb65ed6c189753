"""Do a trained DMNet's generated filters vary between images and follow the scene zoom?

    python scripts/filter_adaptation.py RUN_DIR [--figure docs/figures/filter_adaptation.png]

RUN_DIR is a finished training run of a dynamic DMNet head on ``data=synthetic_scales`` (its
``config.yaml`` and ``metrics.json`` name the data and the checkpoint). Prints, per branch, the
share of filter energy not explained by the mean filter, and Spearman's ρ between each image's
filter spread and its scene zoom with a 95 % bootstrap CI over the validation scenes. The measures
are ``dynaseg.analysis.filter_adaptation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dynaseg.analysis.filter_adaptation import (
    collect_filters,
    plot_spread_vs_zoom,
    spatial_spread,
    spearman_ci,
    unexplained_energy,
)
from dynaseg.training.module import SegmentationModule


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
    data_cfg = OmegaConf.load(config).data
    datamodule = instantiate(data_cfg)
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]
    if not hasattr(dataset, "zoom_of"):
        print(
            f"error: {type(dataset).__name__} has no per-scene zoom (use data=synthetic_scales)",
            file=sys.stderr,
        )
        return 2
    model = SegmentationModule.load_from_checkpoint(ckpt, map_location="cpu")
    batches = (batch["image"] for batch in datamodule.val_dataloader())
    filters = collect_filters(model.net, batches)
    zooms = np.array([dataset.zoom_of(i) for i in range(len(dataset))])

    results: dict[str, dict[str, float]] = {}
    spreads, correlations = {}, {}
    for name, f in filters.items():
        k = f.shape[-1]
        entry = {"kernel": k, "unexplained_energy": unexplained_energy(f)}
        if k > 1:
            spreads[f"k={k}"] = spatial_spread(f)
            corr = spearman_ci(zooms, spreads[f"k={k}"])
            correlations[f"k={k}"] = corr
            entry |= {"spearman_rho": corr.rho, "ci_low": corr.low, "ci_high": corr.high}
        results[name] = entry
        shown = f"  spread vs zoom: {correlations[f'k={k}']}" if k > 1 else ""
        print(f"{name} (k={k}): unexplained energy {entry['unexplained_energy']:.1%}{shown}")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run_dir), "branches": results}, indent=2))
    if args.figure and spreads:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig = plot_spread_vs_zoom(spreads, zooms, correlations, f"{len(zooms)} validation scenes")
        fig.savefig(args.figure, dpi=110)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
