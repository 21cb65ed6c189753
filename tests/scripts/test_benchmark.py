"""dynaseg.benchmarks.measure (the timing helper, the op categories) and the benchmark command
(scripts/benchmark.py = dynaseg.cli.benchmark: the metric section and its CLI)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from dynaseg.benchmarks import measure
from dynaseg.cli.benchmark import main as benchmark_main


def test_min_times_alternates_keeps_the_minimum_and_respects_the_budget() -> None:
    calls: list[str] = []
    delays = iter([0.03, 0.0, 0.01, 0.0, 0.02, 0.0])

    def slow() -> None:
        calls.append("slow")
        time.sleep(next(delays))

    def fast() -> None:
        calls.append("fast")
        next(delays)

    result = measure.min_times({"slow": slow, "fast": fast}, repeats=3)
    assert calls == ["slow", "fast"] * 3  # round-robin, so drift hits both alike
    assert result["slow"]["s"] >= 0.01 and result["slow"]["n"] == result["fast"]["n"] == 3
    assert result["fast"]["s"] < result["slow"]["s"]
    budgeted = measure.min_times({"sleep": lambda: time.sleep(0.02)}, repeats=10, budget_s=0.01)
    assert budgeted["sleep"]["n"] == 1


def test_profiler_ops_are_categorised() -> None:
    assert measure.categorise("aten::mkldnn_convolution") == "conv"
    assert measure.categorise("aten::convolution_backward") == "conv"
    assert measure.categorise("aten::native_batch_norm_backward") == "norm"
    assert measure.categorise("aten::upsample_bilinear2d") == "resize+loss"
    assert measure.categorise("_ResizedCrossEntropyBackward") == "resize+loss"
    assert measure.categorise("aten::add_") == "other"


def test_conv_closures_compute_the_same_gradients() -> None:
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, requires_grad=True)
    fwd, fwd_bwd = measure.conv_closures(x, w, torch.randn(2, 3, 8, 8))
    fwd("fast")()
    grads = [fwd_bwd(impl)() for impl in ("grouped", "fast")]
    for ref, fast in zip(*grads, strict=True):
        assert torch.allclose(ref, fast, atol=1e-5)


def test_markdown_table() -> None:
    assert measure.table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_cli_rejects_unknown_sections(capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark_main(["--only", "9"])
    assert "sections are [1, 2, 3, 4, 5, 6]" in capsys.readouterr().err


@pytest.mark.slow
def test_metric_section_writes_json_and_table(tmp_path) -> None:
    out = tmp_path / "bench.json"
    assert benchmark_main(["--quick", "--only", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    section = report["sections"]["4"]
    assert section["equal"] is True and section["speedup"] > 1
    assert "MulticlassJaccardIndex" in section["markdown"]


def test_top_ops_table_puts_the_variants_side_by_side() -> None:
    from dynaseg.benchmarks.train_step import top_ops_table

    results = {
        "current": {"top_ops": [["aten::convolution", 900.0, 10], ["aten::bmm", 50.0, 2]]},
        "lean": {"top_ops": [["aten::convolution", 700.0, 10], ["aten::mkldnn_conv", 90.0, 4]]},
        "lean+checkpointing": {},  # not profiled: no column
    }
    lines = top_ops_table(results).strip().splitlines()
    assert lines[0] == "| operator (self CPU ms, one step) | current | lean |"
    # largest first, by the larger of the two variants' times; blank where not among the top
    assert lines[2:5] == [
        "| `aten::convolution` | 900 | 700 |",
        "| `aten::mkldnn_conv` |  | 90 |",
        "| `aten::bmm` | 50 |  |",
    ]
    assert top_ops_table({"current": {}}) == ""


def test_paired_speedup_is_the_geometric_mean_of_the_rounds_with_its_t_interval() -> None:
    import math

    from scipy import stats

    from dynaseg.benchmarks.train_step import paired_speedup, train_step_units

    current, lean = [17.3, 16.2, 16.9, 18.0], [14.7, 15.8, 15.1, 15.0]
    got = paired_speedup(current, lean)
    logs = [math.log(c / x) for c, x in zip(current, lean, strict=True)]
    mean, sem = sum(logs) / 4, stats.sem(logs)
    low, high = stats.t.interval(0.95, 3, loc=mean, scale=sem)
    assert got["rounds"] == 4
    assert got["ratios"] == pytest.approx([c / x for c, x in zip(current, lean, strict=True)])
    assert got["geometric_mean"] == pytest.approx(math.exp(mean))
    assert got["interval95"] == pytest.approx([math.exp(low), math.exp(high)])
    assert paired_speedup([16.0], [15.0])["interval95"] is None  # one round: no interval
    # worker processes: current, lean and current+reuse every round, lean+checkpointing in the
    # first two
    assert [train_step_units(False, r) for r in (None, 1, 2, 8)] == [8, 4, 8, 26]
    assert train_step_units(True, None) == 4


def test_cli_rejects_zero_rounds(capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark_main(["--only", "2", "--rounds", "0"])
    assert "--rounds takes a number of rounds >= 1; got 0" in capsys.readouterr().err


def test_section_options_reach_the_train_step_and_its_units_count_the_workers(
    tmp_path, monkeypatch
) -> None:
    """``--rounds 3`` → ``run_suite(options={2: {"rounds": 3}})`` → three paired rounds; the
    progress bar's units equal the worker processes started (workers replaced by a stub)."""
    import subprocess

    from dynaseg.benchmarks import suite, train_step

    result = {"step_s": 2.0, "peak_rss_mb": 10.0, "first_step_peak_rss_mb": 9.0}
    result |= {"rss_after_build_mb": 5.0, "matmul_peak_gflops": 100.0, "first_loss": 1.0}
    started: list[str] = []
    real_run = subprocess.run

    def worker(cmd, **kwargs):
        if "-m" not in cmd:  # not a train-step worker (e.g. platform's own probe)
            return real_run(cmd, **kwargs)
        started.append(cmd[3])
        # lean 1.5x faster than current and 1.25x faster than current+reuse in every round
        step = {"current": 3.0, "current+reuse": 2.5}.get(cmd[3], 2.0)
        out = json.dumps(result | {"variant": cmd[3], "step_s": step, "step_gflop": 1.0})
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(train_step.subprocess, "run", worker)
    report = suite.run_suite(True, [2], tmp_path / "b.json", {2: {"rounds": 3}})
    section = report["sections"]["2"]
    assert started.count("current") == started.count("lean") == 3
    assert started.count("current+reuse") == 3
    assert started.count("lean+checkpointing") == 2
    assert len(started) == train_step.train_step_units(True, 3) == 11
    assert section["paired_speedup"]["ratios"] == [1.5, 1.5, 1.5]
    assert section["paired_speedup_same_allocator"]["ratios"] == [1.25, 1.25, 1.25]
    assert "Lean vs current+reuse (both with freed memory reused)" in section["markdown"]
    assert "no interval (every round gave the same ratio)" in section["markdown"]
