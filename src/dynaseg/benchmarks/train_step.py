"""Section 2 of the performance suite: the DMNet-R50-D8 train step (forward + backward + SGD,
150 classes) in four variants — the current path (grouped dynamic conv, literal upsample +
cross-entropy, the C library's allocator: mmseg's model as mmseg runs it), the lean one (the
defaults: fast conv, band-wise loss, freed CPU memory reused), lean + activation checkpointing,
and the current path with freed memory reused (how much of lean's lead is the allocator) —
each in a fresh process (``python -m dynaseg.benchmarks.train_step VARIANT SIZE STEPS``) so its
peak RSS is its own; FLOP/s of the step as a fraction of the fp32 matmul peak measured in the same
process; time split conv / norm / resize+loss / other (``torch.profiler``).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from typing import Any

import torch
from tqdm import tqdm

from dynaseg.benchmarks.measure import (
    categorise,
    matmul_peak_gflops,
    min_times,
    peak_rss_mb,
    reset_peak_rss,
    table,
)

NUM_CLASSES = 150
TOP_OPS = 12  # operators listed per profiled variant

VARIANTS = {
    "current": {
        "dynamic_conv": "grouped",
        "split_bottleneck": False,
        "lean_loss": False,
        "recompute_convs": False,
        "grad_checkpointing": False,
        "cpu_memory_reuse": False,
    },
    "lean": {
        "dynamic_conv": "fast",
        "split_bottleneck": True,
        "lean_loss": True,
        "recompute_convs": True,
        "grad_checkpointing": False,
        "cpu_memory_reuse": True,
    },
    "lean+checkpointing": {
        "dynamic_conv": "fast",
        "split_bottleneck": True,
        "lean_loss": True,
        "recompute_convs": True,
        "grad_checkpointing": True,
        "cpu_memory_reuse": True,
    },
}
VARIANTS["current+reuse"] = {**VARIANTS["current"], "cpu_memory_reuse": True}


def build_dmnet(variant: dict[str, Any] | None = None):
    """DMNet-R50-D8 for ADE20K (150 classes) from the real Hydra configs, random weights."""
    from omegaconf import open_dict

    from dynaseg.run.entry import compose
    from dynaseg.run.recipes import build_model

    cfg = compose("train", ["model=dmnet", "data=ade20k"])
    variant = variant or VARIANTS["lean"]
    with open_dict(cfg):
        cfg.model.net.decode_head.dynamic_conv = variant["dynamic_conv"]
        cfg.model.net.decode_head.split_bottleneck = variant["split_bottleneck"]
        cfg.model.net.grad_checkpointing = variant["grad_checkpointing"]
        cfg.model.net.recompute_convs = variant["recompute_convs"]
        cfg.model.lean_loss = variant["lean_loss"]
    torch.manual_seed(0)
    return build_model(cfg)


def train_worker(variant_name: str, size: int, steps: int, extras: bool) -> dict[str, Any]:
    """One variant's train step in this (fresh) process: time, peak RSS, FLOPs, time split."""
    from torch.utils.flop_counter import FlopCounterMode

    from dynaseg.run.cpu_memory import keep_freed_memory

    variant = VARIANTS[variant_name]
    if variant["cpu_memory_reuse"] and not keep_freed_memory():
        raise RuntimeError(f"{variant_name}: freed-memory reuse needs glibc (mallopt)")
    module = build_dmnet(variant).train()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, size, size, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (2, size, size), generator=gen)
    labels[:, : size // 16] = 255
    rss_model_mb = peak_rss_mb()
    peak = matmul_peak_gflops()
    losses_seen: list[float] = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropout masks in every variant
        losses = module.compute_losses(module.net.forward_train(images), labels)
        loss = sum(losses.values())
        loss.backward()
        optimizer.step()
        losses_seen.append(loss.item())

    step()  # warm-up: oneDNN primitives, momentum buffers, allocator growth
    first_step_peak_mb = peak_rss_mb()
    steady = reset_peak_rss()
    times = min_times({"step": step}, steps)["step"]["s"]
    peak_mb = peak_rss_mb()
    # Counted (and profiled, below) only after the memory was read: the counting mode's own
    # bookkeeping must not set the peak.
    with FlopCounterMode(display=False) as counter:
        step()
    out: dict[str, Any] = {
        "variant": variant_name,
        "size": size,
        "step_s": times,
        # steady-state steps (momentum buffers allocated, allocator warmed up); where the peak
        # cannot be reset this is the whole process's, first step included
        "peak_rss_mb": peak_mb,
        "peak_rss_is_steady_state": steady,
        "first_step_peak_rss_mb": first_step_peak_mb,
        "rss_after_build_mb": rss_model_mb,
        "matmul_peak_gflops": peak,
        "first_loss": losses_seen[0],
        "step_gflop": counter.get_total_flops() / 1e9,
    }
    if extras:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            step()
        split = {"conv": 0.0, "norm": 0.0, "resize+loss": 0.0, "other": 0.0}
        for event in prof.key_averages():
            split[categorise(event.key)] += event.self_cpu_time_total
        total = sum(split.values()) or 1.0
        out["split"] = {k: v / total for k, v in split.items()}
        # the operators behind the split: self CPU ms of one step and calls, largest first
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        out["top_ops"] = [[e.key, e.self_cpu_time_total / 1e3, e.count] for e in events[:TOP_OPS]]
    return out


def paired_speedup(current_s: list[float], lean_s: list[float]) -> dict[str, Any]:
    """Throughput of lean over current from paired rounds (each round ran both, back to back):
    the per-round ratios, their geometric mean and its 95 % t interval (on the log ratios, so
    drift that slows a whole round cancels in its pair)."""
    from dynaseg.reporting.seed_stats import paired_difference

    logs = paired_difference(
        {str(r): math.log(c) for r, c in enumerate(current_s)},
        {str(r): math.log(x) for r, x in enumerate(lean_s)},
    )
    interval = logs.interval
    return {
        "rounds": logs.n,
        "ratios": [c / x for c, x in zip(current_s, lean_s, strict=True)],
        "geometric_mean": math.exp(logs.mean) if logs.mean is not None else None,
        "interval95": [math.exp(v) for v in interval] if interval else None,
    }


def bench_train_step(quick: bool, bar: tqdm, rounds: int | None = None) -> dict[str, Any]:
    """Section 2. ``rounds``: how often current, lean and current+reuse each run in a fresh
    process, alternating (default 2, ``--quick`` 1); lean+checkpointing runs in the first two only.
    The table shows the minimum over every round's steps; with 2 or more rounds the paired
    per-round ratios follow (lean vs current, and lean vs current+reuse)."""
    size, steps = (128, 1) if quick else (512, 2)
    rounds = _rounds(quick, rounds)
    results: dict[str, dict[str, Any]] = {}
    per_round: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(rounds):  # alternate the variants so drift hits all of them alike
        for name in VARIANTS:
            if name == "lean+checkpointing" and r >= 2:
                continue
            bar.set_postfix_str(f"train step {name} {size}² ({r + 1}/{rounds})")
            cmd = [sys.executable, "-m", __name__, name, str(size), str(steps)]
            cmd += ["--extras"] if r == 0 and name != "lean+checkpointing" else []
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"train-step worker {name} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            per_round[name].append(res["step_s"])
            prev = results.get(name)
            if prev is None:
                results[name] = res
            else:
                prev["step_s"] = min(prev["step_s"], res["step_s"])
                for key in ("peak_rss_mb", "first_step_peak_rss_mb"):
                    prev[key] = min(prev[key], res[key])
            bar.update(1)
    for name, times in per_round.items():
        results[name]["step_s_per_round"] = times
    cur = results["current"]
    # The same network in every variant: count its FLOPs once, from the lean variant (the flop
    # counter does not see the compiled dynamic conv, a few GFLOP; it counts the grouped reference
    # as far more, and checkpointing adds recomputation that is not useful work).
    useful_gflop = results["lean"]["step_gflop"]
    for res in results.values():
        res["fraction_of_matmul_peak"] = useful_gflop / res["step_s"] / res["matmul_peak_gflops"]
    rows = []
    for name, res in results.items():
        split = res.get("split")
        rows.append(
            [
                name,
                f"{res['step_s']:.2f}",
                f"**{cur['step_s'] / res['step_s']:.2f}**",
                f"{res['peak_rss_mb']:.0f}",
                f"**{res['peak_rss_mb'] / cur['peak_rss_mb']:.2f}**",
                f"{res['first_step_peak_rss_mb']:.0f}",
                f"{res['fraction_of_matmul_peak']:.2f}",
                " / ".join(f"{100 * split[k]:.0f}" for k in split) if split else "",
                f"{res['first_loss']:.5f}",
            ]
        )
    md = table(
        [
            f"DMNet-R50-D8 2×{size}² step",
            "s (min)",
            "throughput ×",
            "peak RSS MB",
            "RSS ×",
            "first-step peak MB",
            "FLOP/s ÷ mm peak",
            "% conv / norm / resize+loss / other",
            "loss",
        ],
        rows,
    )
    md += top_ops_table(results)
    lean = results["lean"]
    md += (
        f"\n\nStep FLOPs {useful_gflop:.0f} GFLOP (`torch.utils.flop_counter`); fp32 matmul peak "
        f"{lean['matmul_peak_gflops']:.0f} GFLOP/s (2048², same process); RSS after building the "
        f"model {lean['rss_after_build_mb']:.0f} MB."
    )
    speedup = None
    if rounds >= 2:
        speedup = paired_speedup(per_round["current"], per_round["lean"])
        same_allocator = paired_speedup(per_round["current+reuse"], per_round["lean"])
        each = f"{rounds} rounds, min of {steps} step{'s' if steps > 1 else ''} each"
        md += f"\n\nLean vs current, paired by round ({each}): {describe_paired(speedup)}."
        md += (
            "\n\nLean vs current+reuse (both with freed memory reused), paired by round: "
            f"{describe_paired(same_allocator)}."
        )
    else:
        same_allocator = None
    return {
        "size": size,
        "variants": results,
        "paired_speedup": speedup,
        "paired_speedup_same_allocator": same_allocator,
        "markdown": md,
    }


def describe_paired(speedup: dict[str, Any]) -> str:
    """Per-round ratios, geometric mean and interval of :func:`paired_speedup`, in words."""
    interval = speedup["interval95"]
    spread = (
        f"95 % t interval [{interval[0]:.3f}, {interval[1]:.3f}]"
        if interval
        else "no interval (every round gave the same ratio)"
    )
    return (
        f"per-round throughput × {', '.join(f'{x:.2f}' for x in speedup['ratios'])}; "
        f"geometric mean **{speedup['geometric_mean']:.3f}×**, {spread}"
    )


def _rounds(quick: bool, rounds: int | None) -> int:
    return rounds or (1 if quick else 2)


def train_step_units(quick: bool, rounds: int | None = None) -> int:
    """Worker processes :func:`bench_train_step` starts (the progress bar's units)."""
    rounds = _rounds(quick, rounds)
    return 3 * rounds + min(rounds, 2)


def top_ops_table(results: dict[str, dict[str, Any]]) -> str:
    """Self CPU ms per step of the operators that cost most in any profiled variant, side by side
    (where the variants' times differ); empty if none was profiled."""
    profiled = {name: res["top_ops"] for name, res in results.items() if res.get("top_ops")}
    if not profiled:
        return ""
    ops: dict[str, dict[str, float]] = {}
    for name, top in profiled.items():
        for key, ms, _ in top:
            ops.setdefault(key, {})[name] = ms
    order = sorted(ops, key=lambda k: max(ops[k].values()), reverse=True)
    rows = [
        [f"`{k}`", *(f"{ops[k][n]:.0f}" if n in ops[k] else "" for n in profiled)] for k in order
    ]
    head = ["operator (self CPU ms, one step)", *profiled]
    return "\n\n" + table(head, rows) + "\n\n(blank: not among that variant's top operators)"


def worker_main(argv: list[str] | None = None) -> int:
    """One variant's step in this process; prints its result as one JSON line."""
    ap = argparse.ArgumentParser(description="one train-step variant (run by the suite)")
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("size", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("--extras", action="store_true", help="also profile the time split")
    args = ap.parse_args(argv)
    print(json.dumps(train_worker(args.variant, args.size, args.steps, args.extras)))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
