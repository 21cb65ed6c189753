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
give the null. The measures are ``dynaseg.analysis.filter_adaptation``.
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
    zoom_decoding,
)
from dynaseg.errors import UserError
from dynaseg.training.module import SegmentationModule


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

    try:
        ckpt = run_checkpoint(args.run_dir)
        null_ckpt = run_checkpoint(args.null_run) if args.null_run else None
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data_cfg = OmegaConf.load(args.run_dir / "config.yaml").data
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
    report: dict = {"run": str(args.run_dir), "branches": results}
    if args.decode or args.null_run:
        if len(set(zooms.round(6))) < 2:
            print(
                f"error: {args.run_dir}'s validation zooms are all equal: R² undefined (decode a "
                "data=synthetic_scales run; a zoom-fixed run goes in --null-run)",
                file=sys.stderr,
            )
            return 2
        null_model = None
        if null_ckpt is not None:
            null_model = SegmentationModule.load_from_checkpoint(null_ckpt, map_location="cpu")

        def images():  # noqa: ANN202 - the validation scenes, in order, once per pass
            return (batch["image"] for batch in datamodule.val_dataloader())

        null_net = null_model.net if null_model is not None else None
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
    if args.figure and spreads:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig = plot_spread_vs_zoom(spreads, zooms, correlations, f"{len(zooms)} validation scenes")
        fig.savefig(args.figure, dpi=110)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
