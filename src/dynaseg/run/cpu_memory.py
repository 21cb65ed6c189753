"""Freed CPU memory kept for the next step: ``extras.cpu_memory_reuse`` (on by default).

PyTorch takes CPU tensors from the C library's ``malloc``. glibc serves every block above its mmap
threshold (which adapts to use but never exceeds 32 MiB on 64-bit systems) with a fresh ``mmap``
and unmaps it again at ``free``. A train step whose activations are tens of MiB each — a
DMNet-R50-D8 feature map at 2×512² is 16–64 MiB — therefore gets new memory on every step, and the
kernel faults in and zeroes each 4 KiB page of it on first touch. On the 2-vCPU machines of
docs/benchmarks.md that costs 10–25 % of such a step, and 8–9 % of whole-image inference.

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve every block from its heap
(``M_MMAP_MAX`` = 0) and never to hand freed memory back to the system (``M_TRIM_THRESHOLD`` at
its maximum), so the next step reuses the pages the last one touched. The process's resident
memory then stays at the heap's high-water mark instead of following the live tensors (a few per
cent more peak RSS in the benchmarks). This is the policy PyTorch's own CPU launcher
(``python -m torch.backends.xeon.run_cpu``) gets by preloading jemalloc or tcmalloc with memory
return switched off; here it needs no preload. Where a block lives does not change what is
computed in it: a seeded run's metrics and weights are the same with and without it (tested).

The setting is process-wide and cannot be taken back by the run that made it;
``extras.cpu_memory_reuse=false`` leaves the C library's defaults alone. Only glibc has
``mallopt``: elsewhere (macOS, musl) the run says so once and goes on with the defaults.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes an int: the largest trim threshold means "never trim"
NEVER_TRIM = 2**31 - 1
# glibc's defaults, for :func:`restore_glibc_defaults`
DEFAULT_MMAP_MAX = 65536
DEFAULT_TRIM_THRESHOLD = 128 * 1024


@cache
def glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (the one with ``mallopt``), else ``None``."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)
    except (AttributeError, ValueError, OSError):  # no confstr name / not glibc / no handle
        return None
    return libc if hasattr(libc, "mallopt") else None


def _mallopt(libc: ctypes.CDLL, param: int, value: int) -> bool:
    return libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1


def keep_freed_memory() -> bool:
    """Serve every block from glibc's heap and keep freed memory for reuse (module docstring).
    Returns whether the policy is in effect (``False`` where the C library is not glibc)."""
    libc = glibc()
    if libc is None:
        return False
    return _mallopt(libc, M_MMAP_MAX, 0) and _mallopt(libc, M_TRIM_THRESHOLD, NEVER_TRIM)


def restore_glibc_defaults() -> bool:
    """Put glibc's mmap and trim limits back to their defaults (for tests and notebooks that
    compare both). glibc's adaptive mmap threshold stays at the value it had reached: ``mallopt``
    has no way to switch the adaptation back on."""
    libc = glibc()
    if libc is None:
        return False
    return _mallopt(libc, M_MMAP_MAX, DEFAULT_MMAP_MAX) and _mallopt(
        libc, M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD
    )


def apply_cpu_memory_policy(cfg: Mapping[str, Any]) -> bool:
    """A run's ``extras.cpu_memory_reuse`` (absent: off): switch reuse on if asked, and say so
    where it cannot be. Returns whether reuse is in effect."""
    if not (cfg.get("extras") or {}).get("cpu_memory_reuse", False):
        return False
    if keep_freed_memory():
        return True
    rank_zero_info(
        "extras.cpu_memory_reuse: the C library is not glibc, so freed CPU memory is returned "
        "to the system as usual (set extras.cpu_memory_reuse=false to silence this)"
    )
    return False
