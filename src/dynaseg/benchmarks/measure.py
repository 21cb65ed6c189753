"""Measuring helpers of the performance suite (:mod:`dynaseg.benchmarks.suite`): min-of-N timing,
markdown tables, the fp32 matmul peak, peak RSS, profiler-op categories and the dynamic-conv
closures it times.

Every time is the minimum of N round-robin repeats (the least disturbed one on a shared machine);
compare only ratios measured in the same run.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from dynaseg.models.ops import dynamic_depthwise_conv2d


def min_times(
    fns: dict[str, Callable[[], object]], repeats: int, budget_s: float = float("inf")
) -> dict[str, dict[str, float]]:
    """Run ``fns`` round-robin (A B A B …) and keep each one's minimum wall time.

    Stops early once ``budget_s`` is spent (at least one run each), so a 20-s reference does not
    make ``--quick`` slow; the number of runs is reported beside the time.
    """
    best = {name: float("inf") for name in fns}
    runs = {name: 0 for name in fns}
    start = time.perf_counter()
    for r in range(repeats):
        if r > 0 and time.perf_counter() - start > budget_s:
            break
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            runs[name] += 1
    return {name: {"s": best[name], "n": runs[name]} for name in fns}


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matrix-multiply throughput (best of ``repeats``), the machine's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = min_times({"mm": lambda: torch.mm(a, b)}, repeats)["mm"]["s"]
    return 2 * n**3 / t / 1e9


def conv_closures(x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor):
    """``fwd(impl)`` and ``fwd_bwd(impl)`` callables for one problem size."""

    def fwd(impl: str) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                dynamic_depthwise_conv2d(x, w, impl=impl)

        return run

    def fwd_bwd(impl: str) -> Callable[[], object]:
        return lambda: torch.autograd.grad(dynamic_depthwise_conv2d(x, w, impl=impl), (x, w), grad)

    return fwd, fwd_bwd


def categorise(name: str) -> str:
    name = name.lower()
    if "conv" in name:
        return "conv"
    if "batch_norm" in name:
        return "norm"
    loss_ops = (
        "upsample",
        "log_softmax",
        "nll_loss",
        "cross_entropy",
        "logsumexp",
        "index_add",
        "index_select",
        "gather",
        "scatter",
        "resizedcrossentropy",
    )
    if any(op in name for op in loss_ops):
        return "resize+loss"
    return "other"


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark (``VmHWM``; ``ru_maxrss`` where there is no
    ``/proc``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (2**20 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Restart the high-water mark from the current RSS (Linux ≥ 4.0: ``5 > clear_refs``), so a
    peak can be read for the steady-state steps alone; ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
