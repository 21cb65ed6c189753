"""dynaseg.benchmarks.waits (section 6 of scripts/benchmark.py): whole-process timing of the
quick start, a miniature job against the scene cache off, and a miniature sweep."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tqdm import tqdm

from dynaseg.benchmarks.waits import WAIT_RUNS, bench_waits, time_process
from helpers import TINY

# two busy processes: the parent burns ~0.3 s CPU, its child (waited for) another ~0.3 s
BURN = """
import subprocess, sys, time
def burn(s):
    end = time.process_time() + s
    while time.process_time() < end:
        pass
if len(sys.argv) > 1:
    burn(0.3)
else:
    burn(0.3)
    subprocess.run([sys.executable, __file__, "child"], check=True)
"""


def test_time_process_counts_the_process_and_its_waited_for_children(tmp_path: Path) -> None:
    script = tmp_path / "burn.py"
    script.write_text(BURN)
    result = time_process([str(script)], tmp_path, {})
    assert result["cpu_s"] >= 0.55  # both processes' CPU, not only the parent's
    assert result["wall_s"] >= result["cpu_s"] * 0.5 and result["rss_mib"] > 1
    script.write_text("import sys; print('boom'); sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"(?s)failed \(3\).*boom"):
        time_process([str(script)], tmp_path, {})


@pytest.mark.slow
def test_bench_waits_times_every_wait_on_a_tiny_run() -> None:
    tiny = [o for o in TINY if not o.startswith("experiment=")]
    with tqdm(total=WAIT_RUNS[True], file=io.StringIO()) as bar:
        report = bench_waits(True, bar, extra=[*tiny, "data.num_workers=0"], max_steps=2)
        assert bar.n == WAIT_RUNS[True]  # one progress unit per process started
    results = report["results"]
    assert set(results) == {
        "quick start",
        "miniature job",
        "miniature job, no caches",
        "miniature sweep, 5 jobs",
        "miniature sweep, 5 jobs, no feature cache",
    }
    for name, r in results.items():
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["rss_mib"] > 50, name
    sweep = results["miniature sweep, 5 jobs"]["wall_s"]
    assert report["sweep_wall_per_job_s"] == pytest.approx(sweep / 5)
    assert report["sweep_wall_ratio_vs_no_feature_cache"] == pytest.approx(
        sweep / results["miniature sweep, 5 jobs, no feature cache"]["wall_s"]
    )
    assert report["cpu_ratio_vs_no_cache"] == pytest.approx(
        results["miniature job"]["cpu_s"] / results["miniature job, no caches"]["cpu_s"]
    )
    assert "| miniature job, no caches |" in report["markdown"]
    assert "× 50 jobs" in report["markdown"] and "(2-step jobs)" in report["markdown"]


def test_quick_start_runs_as_the_user_starts_it_and_miniature_jobs_on_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``make train`` sets no thread count; a job of a 2-job sweep on 2 cores gets one thread."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake(args, cwd, env):  # noqa: ANN001, ANN202
        calls.append((list(args), env))
        return {
            "wall_s": 2.0,
            "cpu_s": 3.0 if "data.dataset.memory_cache_mb=0" in args else 1.5,
            "rss_mib": 100.0,
        }

    monkeypatch.setattr("dynaseg.benchmarks.waits.time_process", fake)
    with tqdm(total=WAIT_RUNS[True], file=io.StringIO()) as bar:
        report = bench_waits(True, bar)
    threads = {
        ("quick" if "experiment=quickstart" in args else "mini", env.get("OMP_NUM_THREADS"))
        for args, env in calls
    }
    assert threads == {("quick", None), ("mini", "1")}
    assert len(calls) == WAIT_RUNS[True]
    assert report["cpu_ratio_vs_no_cache"] == pytest.approx(0.5)
    assert report["sweep_wall_per_job_s"] == pytest.approx(2.0 / 5)
    assert report["sweep_wall_ratio_vs_no_feature_cache"] == pytest.approx(1.0)
    sweeps = [args for args, _ in calls if "-m" in args]
    assert len(sweeps) == 2 and "callbacks.frozen_feature_cache=null" in sweeps[1]
    assert all("seed=1" in a and "data=synthetic_scales" in a for a in sweeps)
