"""Do a trained DMNet's generated filters vary between images and follow the scene zoom?

    python scripts/filter_adaptation.py RUN_DIR [--figure docs/figures/filter_adaptation.png]
    python scripts/filter_adaptation.py RUN_DIR --decode [--null-run FIXED_RUN_DIR] [--json F]

RUN_DIR is a finished training run of a dynamic DMNet head on ``data=synthetic_scales`` (its
``config.yaml`` and ``metrics.json`` name the data and the checkpoint). Prints, per branch, the
share of filter energy not explained by the mean filter, and Spearman's ρ between each image's
filter spread and its scene zoom with a 95 % bootstrap CI over the validation scenes (blind to a
zoom carried by a per-channel gain or sign).

``--decode`` adds the cross-validated R² of the log zoom decoded by ridge regression (the decoder
of docs/ablations.md, Evidence round 2, E5) from each image's filters (all branches, and each
branch), from its layer-4 features average-pooled (the upper bound), and the same with the zooms
permuted (≈ 0 unless the decoder overfits). ``--null-run`` names the matching run trained on
``data=synthetic_scales_fixed``: its filters, computed on RUN_DIR's zoom-varying validation scenes,
give the null. The measures are ``dynaseg.analysis.filter_adaptation``. Also
``python -m dynaseg.cli.filter_adaptation``, ``dynaseg-filter-adaptation``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dynaseg.analysis.filter_adaptation import (
    collect_filters,
    measure_adaptation,
    plot_spread_vs_zoom,
    zoom_decoding,
)
from dynaseg.cli import exit_with
from dynaseg.errors import UserError
from dynaseg.run.checkpoints import load_module


def run_checkpoint(run_dir: Path) -> Path:
    """The best checkpoint a finished run's metrics.json names (a :class:`UserError` if none)."""
    config, metrics = run_dir / "config.yaml", run_dir / "metrics.json"
    for f in (config, metrics):
        if not f.is_file():
            raise UserError(f"{f} not found; RUN_DIR must be a finished training run")
    ckpt = json.loads(metrics.read_text()).get("best_checkpoint")
    if not ckpt or not Path(ckpt).is_file():
        raise UserError(f"{metrics} names no existing best_checkpoint ({ckpt!r})")
    return Path(ckpt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished training run directory")
    parser.add_argument("--figure", type=Path, help="write the spread-vs-zoom figure here")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument(
        "--decode", action="store_true", help="cross-validated R² of log zoom (see above)"
    )
    parser.add_argument(
        "--null-run", type=Path, help="the matching zoom-fixed run (the decoding null)"
    )
    args = parser.parse_args(argv)

    ckpt = run_checkpoint(args.run_dir)
    null_ckpt = run_checkpoint(args.null_run) if args.null_run else None
    datamodule = instantiate(OmegaConf.load(args.run_dir / "config.yaml").data)
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]
    if not hasattr(dataset, "zoom_of"):
        raise UserError(
            f"{type(dataset).__name__} has no per-scene zoom (use data=synthetic_scales)"
        )
    model = load_module(ckpt, "best_checkpoint")

    def images() -> Iterator[torch.Tensor]:
        """The validation scenes, in order, once per pass."""
        return (batch["image"] for batch in datamodule.val_dataloader())

    zooms = np.array([dataset.zoom_of(i) for i in range(len(dataset))])
    measures = measure_adaptation(collect_filters(model.net, images()), zooms)
    for name, entry in measures.branches.items():
        k = entry["kernel"]
        shown = f"  spread vs zoom: {measures.correlations[f'k={k}']}" if k > 1 else ""
        print(f"{name} (k={k}): unexplained energy {entry['unexplained_energy']:.1%}{shown}")
    report: dict[str, Any] = {"run": str(args.run_dir), "branches": measures.branches}
    if args.decode or args.null_run:
        if len(set(zooms.round(6))) < 2:
            raise UserError(
                f"{args.run_dir}'s validation zooms are all equal: R² undefined (decode a "
                "data=synthetic_scales run; a zoom-fixed run goes in --null-run)"
            )
        null_net = load_module(null_ckpt, "best_checkpoint").net if null_ckpt else None
        r2 = zoom_decoding(model.net, images, zooms, null_net)
        report["decoding_r2"] = r2
        print(
            f"R² of log zoom decoded from the filters (all branches): {r2['filters']:+.3f} "
            f"(zooms permuted: {r2['filters_permuted']:+.3f})"
        )
        for name, value in r2["filters_by_branch"].items():
            print(f"  {name}: {value:+.3f}")
        print(
            f"from pooled layer-4 features (upper bound): {r2['pooled_features']:+.3f} "
            f"(permuted: {r2['pooled_features_permuted']:+.3f})"
        )
        if "null_filters" in r2:
            print(f"from the zoom-fixed run's filters (null): {r2['null_filters']:+.3f}")
    if args.json:
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
