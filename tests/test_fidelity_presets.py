"""Issue 19: every ablation table of the four papers composes as a sweep (also at +scale=mini),
the published MS/flip rows have presets with the papers' scales, the Cityscapes 769 presets train
with align_corners=True, and make_table lays each new table out with the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dynaseg.reporting.cell_text import format_cell
from dynaseg.reporting.paper_tables import build_paper_table, find_spec
from dynaseg.reporting.rendering import render
from dynaseg.reporting.sweeps import load_sweep
from dynaseg.training.losses import resized_cross_entropy
from helpers import CONF_DIR, compose_config, experiment_overrides, sweep_jobs

# table -> (sweep presets, jobs per preset)
TABLES = {
    "dmnet-table5": ({"dmnet_table5_backbones": 4}),
    "dmnet-table6": ({"dmnet_table6_deep_supervision": 2}),
    "cacnet-table1": ({"cacnet_table1_components": 6}),
    "cacnet-table2": ({"cacnet_table2_strategies": 2}),
    "cacnet-table6": ({"cacnet_table6_weighting": 4}),
    "sac-table1": ({"sac_table1_cityscapes": 3, "sac_table1_scale_only": 2}),
    "sac-table3": ({"sac_table3_ade20k": 3, "sac_table3_scale_only": 2}),
    "dsnet-table1": ({"dsnet_table1_feature_pairs": 4}),
    "dsnet-table2": ({"dsnet_table2_strategies": 2}),
}
PRESETS = sorted((exp, n) for jobs in TABLES.values() for exp, n in jobs.items())


@pytest.mark.parametrize(
    "mini", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["paper", "mini"]
)  # the miniature's launch is tested by test_ablation_experiments (slow)
@pytest.mark.parametrize("experiment, n_jobs", PRESETS)
def test_table_sweep_composes_every_job(experiment: str, n_jobs: int, mini: bool) -> None:
    base = experiment_overrides(experiment) + (["+scale=mini"] if mini else [])
    jobs = sweep_jobs(base)
    seeds = sorted({o for job in jobs for o in job if o.startswith("seed=")})
    assert len(jobs) == n_jobs * max(1, len(seeds))  # the seed axis multiplies the table's cells
    jobs = [job for job in jobs if not seeds or seeds[0] in job]  # one seed: the table's cells
    cfgs = [compose_config("train", base + job) for job in jobs]
    heads = [OmegaConf.to_container(c.model.net.decode_head) for c in cfgs]
    assert (
        len(
            {
                json.dumps(h, sort_keys=True)
                + str(c.model.net.auxiliary_head)
                + str(c.model.net.backbone)
                for h, c in zip(heads, cfgs, strict=True)
            }
        )
        == n_jobs
    )
    name, spec = find_spec(experiment=experiment)
    assert name in TABLES
    if mini:  # the miniature keeps its tiny backbone blocks and single-scale validation
        assert all(list(c.model.net.backbone.layers) == [1, 1, 1, 1] for c in cfgs)
        assert all(list(c.model.inference.scales) == [1.0] for c in cfgs)
    for c in cfgs:  # every variant a table row reads is tested by the runs
        for row in spec["rows"]:
            variant = row.get("variant", spec.get("variant"))
            if variant and not row.get("note"):
                assert variant in (c.get("test_variants") or {}), (experiment, variant)


@pytest.mark.slow  # every job of every table; fast: the per-table compose test
def test_sweeps_set_what_the_table_rows_match() -> None:
    cac = [
        compose_config("train", ["experiment=cacnet_table1_components", *j])
        for j in sweep_jobs(["experiment=cacnet_table1_components"])
    ]
    heads = {
        (
            c.model.net.backbone.name,
            c.model.net.decode_head.num_heads,
            c.model.net.decode_head.global_pool,
        )
        for c in cac
    }
    assert heads == {
        (b, n, g)
        for b in ("resnet50c", "resnet101c")
        for n, g in ((0, False), (2, False), (2, True))
    }
    sac = [
        compose_config("train", ["experiment=sac_table1_scale_only", "baseline_ckpt=b.ckpt", *j])
        for j in sweep_jobs(["experiment=sac_table1_scale_only", "baseline_ckpt=b.ckpt"])
    ]
    for c in sac:
        assert c.model.init_from.path == "b.ckpt" and list(c.model.freeze) == [
            "backbone.body",
            "decode_head.conv_seg",
        ]
    dmnet5 = sweep_jobs(["experiment=dmnet_table5_backbones", "+scale=mini"])
    names = {
        compose_config(
            "train", ["experiment=dmnet_table5_backbones", "+scale=mini", *j]
        ).model.net.backbone.name
        for j in dmnet5
    }
    assert names == {"resnet50c", "resnet101c"}


@pytest.mark.parametrize(
    "experiment",
    [  # tables 1 and 2 are the biggest sweeps (every job composed): slow tier
        *(pytest.param(f"dmnet_table{i}", marks=pytest.mark.slow) for i in (1, 2)),
        *(f"dmnet_table{i}" for i in (3, 4, 5)),
    ],
)
def test_dmnet_tables_1_to_5_run_without_deep_supervision(experiment: str) -> None:
    name = next(
        p.stem
        for p in (CONF_DIR / "experiment").glob(f"{experiment}_*.yaml")
        if not p.stem.endswith("_mini")
    )
    for job in sweep_jobs([f"experiment={name}"]):
        assert (
            compose_config("train", [f"experiment={name}", *job]).model.net.auxiliary_head is None
        )


# preset: (scales, flip, published mIoU)
MS_FLIP = {
    "cacnet_r50_pascal_context_ms_flip": ([0.5, 0.75, 1.0, 1.25, 1.5, 1.75], True, 52.5),
    "cacnet_r101_ade20k_ms_flip": ([0.5, 0.75, 1.0, 1.25, 1.5, 1.75], True, 46.12),
    "dsnet_r101_voc_aug_ms_flip": ([0.75, 1.0, 1.25, 1.5, 1.75, 2.0], True, 82.53),
    "dsnet_r101_ade20k_ms_flip": ([0.75, 1.0, 1.25, 1.5, 1.75, 2.0], True, 46.4),
    "dsnet_r101_pascal_context_ms_flip": ([0.75, 1.0, 1.25, 1.5, 1.75, 2.0], True, 54.2),
    "sac_r101_cityscapes_ms": ([0.5, 0.75, 1.0, 1.25, 1.5, 1.75], False, 78.2),
    "sac_r101_ade20k_ms": ([0.5, 0.75, 1.0, 1.25, 1.5, 1.75], False, 43.65),
}


@pytest.mark.parametrize("preset", sorted(MS_FLIP))
def test_ms_flip_presets_are_the_recipe_tested_at_the_papers_scales(preset: str) -> None:
    scales, flip, published = MS_FLIP[preset]
    cfg = compose_config("train", [f"experiment={preset}"])
    base = compose_config("train", [f"experiment={preset.rsplit('_ms', 1)[0]}"])
    assert list(cfg.model.inference.scales) == scales and cfg.model.inference.flip is flip
    assert cfg.model.inference.mode == "whole"
    assert (cfg.manifest.published or {}).get("mIoU") == published
    # only the evaluation differs from the training preset
    for key in ("model.net", "model.optimizer", "model.scheduler", "data", "trainer"):
        assert OmegaConf.select(cfg, key) == OmegaConf.select(base, key), key


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("mmseg_dmnet_r50_d8_cityscapes_769x769_80k", True),
        ("mmseg_dmnet_r101_d8_cityscapes_769x769_40k", True),
        ("mmseg_dmnet_r50_d8_cityscapes_512x1024_40k", False),
        ("sac_r101_cityscapes", False),
    ],
)
def test_769_presets_train_with_align_corners(preset: str, expected: bool) -> None:
    cfg = compose_config("train", [f"experiment={preset}"])
    assert cfg.model.loss_align_corners is expected
    assert cfg.model.inference.align_corners is expected


def test_769_preset_module_resizes_logits_in_the_loss_with_align_corners() -> None:
    from dynaseg.training.module import SegmentationModule

    cfg = compose_config("train", ["experiment=mmseg_dmnet_r50_d8_cityscapes_769x769_80k"])
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    kwargs.pop("_target_")
    kwargs["net"]["backbone"] = {
        **kwargs["net"]["backbone"],
        "name": "resnet18",
        "layers": [1, 1, 1, 1],
        "channels": [8, 8, 8, 8],
        "stem_width": 8,
        "pretrained": False,
    }
    kwargs["net"]["decode_head"]["channels"] = 8
    kwargs["net"]["auxiliary_head"] = None
    module = SegmentationModule(**kwargs, num_classes=19)
    assert module.hparams.loss_align_corners is True
    torch.manual_seed(0)
    logits, labels = torch.randn(1, 19, 5, 5), torch.randint(0, 19, (1, 33, 33))
    ours = module.compute_losses([logits], labels)["loss_decode"]
    expected = resized_cross_entropy(logits, labels, 255, align_corners=True).mean()
    torch.testing.assert_close(ours, expected)


# ------------------------------------------------------------------ make_table on fabricated runs


def write_job(sweep: Path, num: int, config: dict, metrics: dict, overrides: list[str]) -> None:
    job = sweep / str(num)
    job.mkdir(parents=True)
    provenance = {
        "overrides": overrides,
        "seed": 1,
        "config": config,
        "wall_time_s": 1.0,
        "cpu_time_s": 1.0,
        "steps": 1,
    }
    (job / "metrics.json").write_text(
        json.dumps({**metrics, "status": "completed", "provenance": provenance})
    )


FCN = {"_target_": "dynaseg.models.heads.fcn.FCNHead"}


def test_variant_rows_read_the_runs_test_variants(tmp_path: Path) -> None:
    """CaC-Net Table 2: rows 1-2 single scale, Flip / MS rows from the DS run's test variants."""
    sweep = tmp_path / "sweep"
    for num, aux, base in ((0, None, 0.50), (1, FCN, 0.51)):
        metrics = {
            "test": {"mIoU": base, "aAcc": base + 0.3},
            "test_variants": {
                "flip": {"mIoU": base + 0.004, "aAcc": base + 0.301},
                "ms_flip": {"mIoU": base + 0.01, "aAcc": base + 0.302},
            },
        }
        config = {"model": {"net": {"auxiliary_head": aux}}}
        write_job(sweep, num, config, metrics, ["experiment=cacnet_table2_strategies"])
    table = build_paper_table(load_sweep(sweep), *find_spec("cacnet-table2"))
    values = [c.mean for row in table.cells for c in row]
    assert values == pytest.approx([80.0, 50.0, 81.0, 51.0, 81.1, 51.4, 81.2, 52.0])
    assert [[c.paper for c in row] for row in table.cells] == [
        [79.4, 50.7],
        [79.7, 51.5],
        [79.9, 51.8],
        [80.2, 52.5],
    ]
    assert table.unmatched == []


def test_cacnet_table6_marks_the_heads_not_built_and_keeps_both_paper_numbers(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sweep"
    for num, weighting in enumerate(["fixed", "gap", "se", "cac"]):
        miou = 0.50 + num / 100
        metrics = {"test": {"mIoU": 0.0}, "test_variants": {"ms_flip": {"mIoU": miou, "aAcc": 0.8}}}
        config = {"model": {"net": {"decode_head": {"weighting": weighting}}}}
        write_job(sweep, num, config, metrics, [f"model.net.decode_head.weighting={weighting}"])
    text = render(load_sweep(sweep), "cacnet-table6")
    one = " **1 seed: no CI**"  # one run per cell: flagged, no interval
    cells = ["50.00 / 51.30", "—", "51.00 / 51.60", "52.00 / 50.90", "—", "53.00 / 52.50"]
    row = " | ".join(c if c == "—" else c + one for c in cells)
    assert f"| mIoU | {row} |" in text
    assert (
        f"| mIoU (the text, §4.2) | — | — | 51.00 / 51.90{one} | — | — | 53.00 / 52.50{one} |"
        in text
    )
    assert "Columns not run (paper numbers in the CSV): FC:" in text and "EncHead:" in text
    csv_text = render(load_sweep(sweep), "cacnet-table6", fmt="csv")
    assert (
        'cacnet-table6,mIoU,,"mIoU (the text, §4.2)",FC,False,0,1,,,,,,,,51.7,,,,,,,,"depth-wise FC'
        in csv_text
    )


def test_sac_table_joins_the_scale_only_sweep(tmp_path: Path) -> None:
    """SAC Table 1 from two sweeps: baseline / single / multiple (+ MS) and the scale-only runs."""
    timm = "dynaseg.models.backbones.TimmBackbone"
    multi = "dynaseg.models.scale_adaptive.sac_multiple_backbone"
    frozen = ["backbone.body", "decode_head.conv_seg"]
    main, only = tmp_path / "main", tmp_path / "only"
    for num, (target, adaptive, miou) in enumerate(
        [(timm, False, 0.70), (timm, True, 0.72), (multi, True, 0.73)]
    ):
        config = {
            "model": {
                "freeze": [],
                "net": {"backbone": {"_target_": target}, "decode_head": {"adaptive": adaptive}},
            }
        }
        metrics = {"test": {"mIoU": miou}, "test_variants": {"ms": {"mIoU": miou + 0.02}}}
        write_job(main, num, config, metrics, [f"job={num}"])
    for num, (target, miou) in enumerate([(timm, 0.705), (multi, 0.708)]):
        config = {
            "model": {
                "freeze": frozen,
                "net": {"backbone": {"_target_": target}, "decode_head": {"adaptive": True}},
            }
        }
        write_job(only, num, config, {"test": {"mIoU": miou}}, [f"job={num}"])
    table = build_paper_table(load_sweep([main, only]), *find_spec("sac-table1"))
    ours = [row[0].mean for row in table.cells]
    assert ours == pytest.approx([70.0, 70.5, 70.8, 72.0, 73.0, 74.0, 75.0])
    assert [row[0].paper for row in table.cells] == [74.0, 74.5, 74.8, 75.9, 76.5, 78.2, 78.7]
    assert table.unmatched == [] and format_cell(table.cells[1][0]) == (
        "70.50 / 74.50 **1 seed: no CI**"
    )


def test_dmnet_table6_flip_and_ms_rows_and_the_ft_note(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for num, aux in enumerate([None, FCN]):
        metrics = {
            "test": {"mIoU": 0.80 + num / 100},
            "test_variants": {"flip": {"mIoU": 0.815}, "ms_flip": {"mIoU": 0.82}},
        }
        write_job(sweep, num, {"model": {"net": {"auxiliary_head": aux}}}, metrics, [f"j={num}"])
    text = render(load_sweep(sweep), "dmnet-table6")
    one = " **1 seed: no CI**"  # one run per cell: flagged, no interval
    assert f"| ResNet101 | 80.00 / 80.87{one} |" in text
    assert f"| + DS (deep supervision) | 81.00 / 81.08{one} |" in text
    assert f"| + DS + Flip | 81.50 / 81.50{one} |" in text
    assert f"| + DS + Flip + MS | 82.00 / 82.15{one} |" in text
    assert "| + DS + Flip + MS + FT | needs fine-tuning" in text


def test_dsnet_table5_places_the_run_beside_the_papers_seven_methods(tmp_path: Path) -> None:
    """DSNet Table 5 (PASCAL-Context): one run of dsnet_r101_pascal_context_ms_flip in the DSNet
    row; the other six methods are the paper's numbers only."""
    sweep = tmp_path / "run"
    metrics = {"test": {"mIoU": 0.53, "aAcc": 0.8}}
    write_job(sweep, 0, {}, metrics, ["experiment=dsnet_r101_pascal_context_ms_flip"])
    table = build_paper_table(load_sweep(sweep), *find_spec("dsnet-table5"))
    assert [row[0].paper for row in table.cells] == [39.3, 45.7, 47.3, 51.7, 52.6, 54.7, 54.2]
    assert table.cells[-1][0].mean == pytest.approx(53.0)
    assert table.unmatched == []
    assert find_spec(experiment="dsnet_r101_pascal_context_ms_flip")[0] == "dsnet-table5"
