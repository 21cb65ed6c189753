"""Do a trained DMNet's generated filters vary between images and follow the scene zoom?

    python scripts/filter_adaptation.py RUN_DIR [--figure docs/figures/filter_adaptation.png]
    python scripts/filter_adaptation.py RUN_DIR --decode [--null-run FIXED_RUN_DIR] [--json F]
    python scripts/filter_adaptation.py RUN_1 ... RUN_5 --decode --null-run FIXED_1 ... FIXED_5

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
give the null. With several runs (one per seed) and their null runs in the same order, the
protocol's decision over the seeds is printed too (``decoding_verdict``). The measures are
``dynaseg.analysis.filter_adaptation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dynaseg.analysis.filter_adaptation import (
    ENCODES_R2,
    OVERFIT_R2,
    collect_filters,
    decoding_verdict,
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


def analyse_run(
    run_dir: Path, null_dir: Path | None, decode: bool, figure: Path | None
) -> dict[str, Any]:
    """Spread and energy per branch (printed), and the decoding R² if asked, of one run."""
    ckpt = run_checkpoint(run_dir)
    null_ckpt = run_checkpoint(null_dir) if null_dir else None
    config = OmegaConf.load(run_dir / "config.yaml")
    datamodule = instantiate(config.data)
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]
    if not hasattr(dataset, "zoom_of"):
        raise UserError(
            f"{type(dataset).__name__} has no per-scene zoom (use data=synthetic_scales)"
        )
    model = SegmentationModule.load_from_checkpoint(ckpt, map_location="cpu")

    def images():  # noqa: ANN202 - the validation scenes, in order, once per pass
        return (batch["image"] for batch in datamodule.val_dataloader())

    filters = collect_filters(model.net, images())
    zooms = np.array([dataset.zoom_of(i) for i in range(len(dataset))])
    print(f"{run_dir} (seed {config.get('seed')}):")
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
        print(f"  {name} (k={k}): unexplained energy {entry['unexplained_energy']:.1%}{shown}")
    report: dict[str, Any] = {"run": str(run_dir), "seed": config.get("seed"), "branches": results}
    if decode or null_dir:
        if len(set(zooms.round(6))) < 2:
            raise UserError(
                f"{run_dir}'s validation zooms are all equal: R² undefined (decode a "
                "data=synthetic_scales run; a zoom-fixed run goes in --null-run)"
            )
        null_net = None
        if null_ckpt is not None:
            null_net = SegmentationModule.load_from_checkpoint(null_ckpt, map_location="cpu").net
        r2 = zoom_decoding(model.net, images, zooms, null_net)
        report["decoding_r2"] = r2
        print(
            f"  R² of log zoom from the filters (all branches): {r2['filters']:+.3f} "
            f"(zooms permuted: {r2['filters_permuted']:+.3f}); by branch: "
            + ", ".join(f"{k} {v:+.3f}" for k, v in r2["filters_by_branch"].items())
        )
        print(
            f"  from pooled layer-4 features (upper bound): {r2['pooled_features']:+.3f} "
            f"(permuted: {r2['pooled_features_permuted']:+.3f})"
        )
        if "null_filters" in r2:
            print(f"  from the zoom-fixed run's filters (null): {r2['null_filters']:+.3f}")
    if figure and spreads:
        figure.parent.mkdir(parents=True, exist_ok=True)
        fig = plot_spread_vs_zoom(spreads, zooms, correlations, f"{len(zooms)} validation scenes")
        fig.savefig(figure, dpi=110)
        print(f"figure: {figure}")
    return report


def print_verdict(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Protocol E5's decision over the runs (seeds), printed; its numbers for the JSON."""
    runs = [{**r["decoding_r2"], "seed": r["seed"]} for r in reports]
    verdict = decoding_verdict(runs)
    diff = verdict["difference"]
    low, high = diff.interval or (float("nan"), float("nan"))
    print(
        f"over {diff.n} seeds: R² filters − R² null = {diff.mean:+.3f} [{low:+.3f}, {high:+.3f}] "
        f"(95 % CI, p = {diff.p if diff.p is not None else float('nan'):.3g}); "
        f"encodes the zoom (mean R² ≥ {ENCODES_R2}): {verdict['encodes']}; adapts beyond the "
        f"null: {verdict['adapts']}; share of the pooled features' R²: {verdict['mean_share']:.2f}"
    )
    for name, d in verdict["branches"].items():
        print(
            f"  {name}: {d.mean:+.3f} (p_Holm = {d.adjusted_p if d.adjusted_p is not None else float('nan'):.3g})"
        )
    if verdict["overfitting"]:
        print(f"WARNING: a permuted-zoom R² is >= {OVERFIT_R2}: the decoder overfits; read nothing")
    return {
        "encodes": verdict["encodes"],
        "adapts": verdict["adapts"],
        "overfitting": verdict["overfitting"],
        "mean_share": verdict["mean_share"],
        "difference": {"mean": diff.mean, "interval": [low, high], "p": diff.p},
        "branches": {
            k: {"mean": d.mean, "p_holm": d.adjusted_p} for k, d in verdict["branches"].items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="+", help="finished training run(s)")
    parser.add_argument("--figure", type=Path, help="the first run's spread-vs-zoom figure")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument(
        "--decode", action="store_true", help="cross-validated R² of log zoom (see above)"
    )
    parser.add_argument(
        "--null-run",
        type=Path,
        nargs="+",
        default=[],
        help="the matching zoom-fixed run of each RUN_DIR, in the same order (the decoding null)",
    )
    args = parser.parse_args(argv)
    if args.null_run and len(args.null_run) != len(args.run_dir):
        print(
            f"error: --null-run names {len(args.null_run)} runs for {len(args.run_dir)} RUN_DIRs; "
            "give one zoom-fixed run per RUN_DIR, in the same order",
            file=sys.stderr,
        )
        return 2
    nulls = args.null_run or [None] * len(args.run_dir)
    try:
        reports = [
            analyse_run(run, null, args.decode, args.figure if i == 0 else None)
            for i, (run, null) in enumerate(zip(args.run_dir, nulls, strict=True))
        ]
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    output: dict[str, Any] = reports[0] if len(reports) == 1 else {"runs": reports}
    if len(reports) > 1 and args.null_run:
        output["verdict"] = print_verdict(reports)
    if args.json:
        args.json.write_text(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
