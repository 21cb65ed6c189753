"""Where code runs: the git commit of the checkout and the machine (platform, CPUs, accelerators,
library versions). Written into every run's ``metrics.json`` (:mod:`dynaseg.run.provenance`) and
logged by :class:`dynaseg.training.logging_callback.SegmentationLogging`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT_ENV = "DYNASEG_ROOT"


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


def hardware_info() -> dict[str, Any]:
    """What the run ran on: platform, CPU count, accelerators and library versions."""
    import lightning

    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
    }
