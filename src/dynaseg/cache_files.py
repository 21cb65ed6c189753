"""Cache files that concurrent jobs share: written whole or not at all.

The on-disk caches (generated scenes, :mod:`dynaseg.data.scene_cache`; a frozen backbone's
features, :mod:`dynaseg.models.feature_cache`; the dataset check's per-file results,
:mod:`dynaseg.data.preflight`) are read by other processes while they are written. A file is
written to a temporary name beside it and renamed, so a reader sees the old file or the new one,
never half of one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path``. On an
    error the temporary file is removed and the error (e.g. ``OSError``) raised."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
