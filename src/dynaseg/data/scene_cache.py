"""Generated scenes kept once made: in memory (per dataset object) and optionally on disk.

A generated dataset (:mod:`dynaseg.data.datasets.synthetic`) draws every sample as a pure function
of ``(generator arguments, split, index)``. A training run visits each scene several times (a
300-step miniature job at batch 8 reads each of its 1000 training scenes 2.4 times on average, the
quick start 8 times) and every job of a sweep draws the same scenes again, so generating them is
repeated work: about a fifth of a miniature job's CPU time (docs/benchmarks.md, "Where a run's time
goes"). :class:`SceneCache` keeps each scene the first time it is made:

- **in memory**, up to ``memory_mb`` per dataset object (each loader worker holds its own copy; its
  workers are persistent, so the cache lives across epochs);
- **on disk** under ``cache_dir`` if one is given, one ``.npy`` file per scene in a directory named
  by a digest of the generator's arguments, of its source code and of the numpy / OpenCV versions
  (a changed generator never reads an old scene). Files are written atomically (a temporary file,
  then a rename), so concurrent jobs of a sweep share the directory safely; an unreadable file is
  generated again.

The values returned are the generator's, byte for byte (tests/data/test_scene_cache.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dynaseg.cache_files import write_atomically

Scene = tuple[np.ndarray, np.ndarray]  # RGB uint8 (h, w, 3), label uint8 (h, w)


@functools.cache
def source_digest(module_names: tuple[str, ...]) -> str:
    """SHA-256 of the source files of ``module_names`` (the generator's code version)."""
    digest = hashlib.sha256()
    for name in module_names:
        digest.update(Path(sys.modules[name].__file__ or name).read_bytes())
    return digest.hexdigest()


def generator_modules(cls: type, base: type) -> tuple[str, ...]:
    """The modules defining ``cls`` and its ancestors down to ``base``: the code a scene of
    ``cls`` depends on."""
    return tuple(
        dict.fromkeys(
            c.__module__ for c in cls.__mro__ if isinstance(c, type) and issubclass(c, base)
        )
    )


class SceneCache:
    """Scenes of one split by index (see the module docstring).

    Args:
        key: what a scene depends on besides its split and index (class, generator arguments,
            code version); its digest names the on-disk directory, and it is written there as
            ``key.json``.
        split: the split's name (a subdirectory on disk).
        size: ``(h, w)`` of every scene (a file of another shape is generated again).
        cache_dir: root of the on-disk cache; ``None``: memory only.
        memory_mb: scenes kept in memory until they take this many megabytes; ``0``: none.
    """

    def __init__(
        self,
        key: dict[str, Any],
        split: str,
        size: tuple[int, int],
        cache_dir: str | Path | None = None,
        memory_mb: float = 256.0,
    ) -> None:
        full_key = {**key, "numpy": np.__version__, "opencv": cv2.__version__}
        text = json.dumps(full_key, sort_keys=True)
        self.key_text = text
        self.shape = (int(size[0]), int(size[1]), 4)  # image channels + label, one array
        self.memory_limit = int(memory_mb * 2**20)
        self.memory: dict[int, Scene] = {}
        self.memory_bytes = 0
        self.directory: Path | None = None
        if cache_dir is not None:
            name = f"{key.get('class', 'scenes').rsplit('.', 1)[-1]}-"
            name += hashlib.sha256(text.encode()).hexdigest()[:16]
            self.directory = Path(cache_dir).expanduser() / name / split

    def get(self, index: int, make: Callable[[], Scene]) -> Scene:
        """Scene ``index``: from memory, else from disk, else ``make()`` (then kept)."""
        scene = self.memory.get(index)
        if scene is None:
            packed = self._read(index)
            if packed is None:
                image, label = make()
                self._write(index, np.concatenate([image, label[..., None]], axis=2))
            else:
                image, label = packed[..., :3].copy(), packed[..., 3].copy()
            scene = image, label
            if self.memory_bytes + image.nbytes + label.nbytes <= self.memory_limit:
                self.memory[index] = scene
                self.memory_bytes += image.nbytes + label.nbytes
        # copies: the caller's pipeline may change them in place
        return scene[0].copy(), scene[1].copy()

    def _path(self, index: int) -> Path:
        assert self.directory is not None
        return self.directory / f"{index:07d}.npy"

    def _read(self, index: int) -> np.ndarray | None:
        if self.directory is None:
            return None
        try:
            packed = np.load(self._path(index), allow_pickle=False)
        except (OSError, ValueError):  # absent, torn or foreign: generate it again
            return None
        if packed.shape != self.shape or packed.dtype != np.uint8:
            return None
        return packed

    def _write(self, index: int, packed: np.ndarray) -> None:
        if self.directory is None:
            return

        def save(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.save(fh, packed, allow_pickle=False)

        try:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                key_file = self.directory.parent / "key.json"
                if not key_file.exists():
                    write_atomically(key_file, lambda tmp: tmp.write_text(self.key_text + "\n"))
            write_atomically(self._path(index), save)
        except OSError as err:  # an unwritable cache only costs time: keep going without it
            warnings.warn(
                f"scene cache: cannot write under {self.directory} ({err}); "
                "scenes are generated without the on-disk cache",
                stacklevel=2,
            )
            self.directory = None
