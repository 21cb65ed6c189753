"""Section 6 of the performance suite: what a CPU user waits for, as whole processes.

Issue 28's table of waits, each timed as the user starts it (``src/train.py`` in a fresh process,
one torch thread per job as the miniature protocol runs it), with the path before the pure-speed
changes of docs/benchmarks.md §7 run in the same call for a same-run ratio where a switch for it
exists:

- **quick start**: ``experiment=quickstart`` (``make train``); ``--quick``: its first 100 steps,
  one validation;
- **miniature job**: one job of the DMNet Table 1 miniature (dynamic {1,3,5,7}, seed 1, frozen
  backbone: the random one, since the time does not depend on the weights), after one unmeasured
  run of it has filled the scene and feature caches, as a sweep's first job does for the later
  arms: the current path (both caches warm), the path before the caches (scenes generated again
  and no feature cache: ``data.dataset.memory_cache_mb=0 data.dataset.cache_dir=null
  callbacks.frozen_feature_cache=null``), and a job that shares no batches with an earlier one
  (scene cache warm, feature cache off); ``--quick``: 100 steps;
- **miniature sweep**: the Table 1 sweep's jobs of head seed 1 as a Hydra multirun on 2 cores
  (``hydra/launcher=joblib``; its five arms in both conditions, 10 jobs, in the sweep's order, so
  the arms of a condition share batches as in the 50-job sweep), with an empty feature cache and
  without one; wall time per job × 50 = the 50-job Table 1 sweep; ``--quick``: the five arms with
  the zoom, 100 steps.

The DMNet-R50-D8 train step against mmseg's is section 2 (:mod:`dynaseg.benchmarks.train_step`).
The quick start runs in the caller's environment, as ``make train`` does (torch's default threads:
one per core); every miniature process gets ``OMP_NUM_THREADS=1``, the one thread a job of a
2-job sweep on 2 cores gets. Each writes under a temporary ``paths.log_dir``; its wall,
CPU (``os.wait4``: the process and its waited-for loader workers) and peak RSS are reported, the
minimum of the repeats.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dynaseg.benchmarks.measure import table
from dynaseg.environment import repo_root

# one DMNet Table 1 miniature arm (dynamic {1,3,5,7}); the job adds a seed, the sweep several
MINI_ARM = [
    "experiment=dmnet_table1_kernel_sets_mini",
    "data=synthetic_scales",
    "model.net.decode_head={filter_type:dynamic,filter_sizes:[1,3,5,7]}",
    "model.init_from=null",  # the time does not depend on the frozen weights
]
FEATURES_OFF = ["callbacks.frozen_feature_cache=null"]
CACHES_OFF = ["data.dataset.memory_cache_mb=0", "data.dataset.cache_dir=null", *FEATURES_OFF]

WAIT_RUNS = {True: 6, False: 11}  # processes started by bench_waits (quick, full): progress units


def time_process(args: Sequence[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run ``python <args>`` to the end: wall s, CPU s (user + system of it and its waited-for
    children) and peak RSS (MiB, the largest single process). A failed run raises with its
    output's tail."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: its rusage, not the caller's
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.seek(0)
            raise RuntimeError(
                f"benchmark run failed ({code}): python {' '.join(args)}\n{log.read()[-2000:]}"
            )
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
    }


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: min(r[k] for r in runs) for k in runs[0]} | {"runs": len(runs)}


def bench_waits(
    quick: bool, bar: tqdm, extra: Sequence[str] = (), max_steps: int | None = None
) -> dict[str, Any]:
    """Time the waits (module docstring); ``extra`` overrides go to every run and ``max_steps``
    replaces the step count (``--quick``: 100; the tests shrink both)."""
    root = repo_root()
    train = str(root / "src" / "train.py")
    user_env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    one_thread = {**user_env, "OMP_NUM_THREADS": "1"}
    max_steps = max_steps or (100 if quick else None)
    steps = [f"trainer.max_steps={max_steps}", f"trainer.val_check_interval={max_steps}"]
    steps = steps if max_steps else []
    repeats = 1 if quick else 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        logs = f"paths.log_dir={tmp}/logs"
        data = f"paths.data_dir={tmp}/data"  # the scene and feature caches (warm-up run)

        def run(
            name: str,
            overrides: Sequence[str],
            multirun: bool = False,
            env: dict[str, str] = one_thread,
        ) -> dict[str, float]:
            bar.set_postfix_str(name)
            args = [train, *(["-m"] if multirun else []), logs, data, *overrides, *extra]
            result = time_process(args, root, env)
            bar.update(1)
            return result

        quickstart = ["experiment=quickstart", *steps]
        results["quick start"] = _best(
            [run("quick start", quickstart, env=user_env) for _ in range(repeats)]
        )
        job = [*MINI_ARM, "seed=1", "hydra.mode=RUN", *steps]
        run("miniature job, cache warm-up", job)
        current, before, unshared = [], [], []
        for _ in range(repeats):  # A B C A B C: every path sees the same machine
            current.append(run("miniature job", job))
            before.append(run("miniature job, no caches", [*job, *CACHES_OFF]))
            if not quick:
                unshared.append(run("miniature job, no feature cache", [*job, *FEATURES_OFF]))
        results["miniature job"] = _best(current)
        results["miniature job, no caches"] = _best(before)
        if unshared:
            results["miniature job, no feature cache"] = _best(unshared)
        jobs = 5 if quick else 10
        sweep = [
            "experiment=dmnet_table1_kernel_sets_mini",
            "model.init_from=null",
            "seed=1",
            *(["data=synthetic_scales"] if quick else []),
            "hydra/launcher=joblib",
            *steps,
        ]
        name = f"miniature sweep, {jobs} jobs"
        sweep_time = run(name, [*sweep, f"hydra.sweep.dir={tmp}/sweep"], multirun=True)
        results[name] = sweep_time | {"runs": 1}
        no_features = [*sweep, *FEATURES_OFF, f"hydra.sweep.dir={tmp}/sweep_nf"]
        results[f"{name}, no feature cache"] = run(
            f"{name}, no feature cache", no_features, multirun=True
        ) | {"runs": 1}
    per_job = sweep_time["wall_s"] / jobs
    ratio = results["miniature job"]["cpu_s"] / results["miniature job, no caches"]["cpu_s"]
    sweep_ratio = sweep_time["wall_s"] / results[f"{name}, no feature cache"]["wall_s"]
    rows = [
        [name, f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", f"{r['rss_mib']:.0f}", str(r["runs"])]
        for name, r in results.items()
    ]
    md = table(["wait (whole process)", "wall s (min)", "CPU s", "peak RSS MiB", "runs"], rows)
    md += (
        f"\n\nminiature job CPU, current / no caches (same run): {ratio:.3f}; sweep: "
        f"{per_job:.1f} s wall per job on {os.cpu_count()} cores, × 50 jobs = "
        f"{per_job * 50 / 60:.1f} min for the Table 1 miniature; sweep wall, current / no "
        f"feature cache: {sweep_ratio:.3f}" + (f" ({max_steps}-step jobs)" if max_steps else "")
    )
    return {
        "results": results,
        "cpu_ratio_vs_no_cache": ratio,
        "sweep_wall_per_job_s": per_job,
        "sweep_wall_ratio_vs_no_feature_cache": sweep_ratio,
        "markdown": md,
    }
