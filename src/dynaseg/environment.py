"""Where code runs: the git commit of the checkout and the machine (platform, CPUs, accelerators,
library versions). Written into every run's ``metrics.json`` (:mod:`dynaseg.run.provenance`) and
logged by :class:`dynaseg.training.logging_callback.SegmentationLogging`: one description,
:func:`hardware_info`.

The machine matters beyond speed. On the CPU, torch picks its kernels (and oneDNN its convolution
algorithms, MKL its GEMM paths) by the instruction sets the processor has (AVX2, AVX-512, AMX …)
and splits the work by the number of threads. Different kernels sum in a different order, so the
same commit, config and seed train to different weights on two machines — e.g. the miniature
backbone reached val mIoU 58.37 on one 2-core VM and 59.40 on another of the same family with
AVX-512 (docs/reproducing.md). :func:`hardware_info` therefore records the CPU model, the
instruction-set flags that select kernels, torch's CPU capability, the torch / oneDNN / MKL
versions and the thread counts; :mod:`dynaseg.reporting.hardware` flags a table whose cells come
from more than one such setup.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT_ENV = "DYNASEG_ROOT"
# /proc/cpuinfo flags that select kernels in torch (ATen's CPU capability), oneDNN and MKL
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni")
KERNEL_FLAG_PREFIXES = ("avx512", "amx")


def repo_root() -> Path:
    """The repository whose ``conf/`` is composed: ``$DYNASEG_ROOT`` (the entry points set it to
    their own checkout), else the checkout this package lives in (``src/dynaseg/..``)."""
    return Path(os.environ.get(ROOT_ENV) or Path(__file__).resolve().parents[2])


def git_info(path: str | Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag (tracked files only) of the git checkout holding ``path`` (default:
    ``$DYNASEG_ROOT``, which the entry points set to their checkout, else this package's sources);
    ``{"commit": None, "dirty": None}`` outside a checkout or without git."""
    where = Path(path or os.environ.get(ROOT_ENV) or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def cpuinfo(path: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def kernel_flags(flags: str) -> list[str]:
    """The instruction-set flags among ``flags`` (cpuinfo's ``flags`` line) that select kernels."""
    return sorted(
        f for f in flags.split() if f in KERNEL_FLAGS or f.startswith(KERNEL_FLAG_PREFIXES)
    )


def library_versions(config: str | None = None) -> dict[str, str | None]:
    """oneDNN and MKL versions from torch's build description (``torch.__config__.show()``)."""
    if config is None:
        import torch  # here, not at the top: every entry script imports this module first

        config = torch.__config__.show()
    text = config
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v([\w.]+)", text)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", text)
    return {"onednn": onednn.group(1) if onednn else None, "mkl": mkl.group(1) if mkl else None}


def hardware_info() -> dict[str, Any]:
    """What the run ran on (``metrics.json`` → ``provenance.hardware``, and the loggers' hardware):
    platform and Python; CPU count, model, the instruction-set flags that select kernels and
    torch's CPU capability; torch / Lightning / oneDNN / MKL versions; the thread settings;
    accelerators (``gpus``: device names, ``cuda``: the CUDA version, both empty on a CPU)."""
    import lightning
    import torch

    info = cpuinfo()
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "cpu_model": info.get("model name") or platform.processor() or platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "isa_flags": kernel_flags(info.get("flags", "")),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        **library_versions(),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "mkl_num_threads": os.environ.get("MKL_NUM_THREADS"),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
    }
