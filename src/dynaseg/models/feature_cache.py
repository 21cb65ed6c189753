"""Features of a frozen backbone kept on disk, so that jobs drawing the same batches skip it.

Every arm of a miniature sweep loads the same frozen backbone (``+scale=mini``) and, for one head
seed and one generator, draws the same batches: arms differ only by their head. The backbone's
forward pass is then the same computation on the same bytes in every arm, and it is about a third
of a miniature job's CPU time (docs/benchmarks.md, "Where a run's time goes"). The validation
scenes are even shared by every job of a generator. :class:`FeatureCache` stores the backbone's
output for each batch the first time it is computed and reads it back afterwards:

- **Keyed by bytes.** A batch's file is named by a digest of the input tensor (its bytes, shape,
  strides and dtype); its directory by a digest of the backbone's weights and buffers, its
  architecture (``repr``), the torch version, the CPU capability torch dispatches to and the torch
  thread count (results can differ in their last bits across any of those). A changed backbone,
  library or machine never reads another's features.
- **Only what the heads read.** The heads name the backbone features they use
  (:meth:`~dynaseg.models.heads.base.DecodeHead.feature_index`); only those are stored, and the
  other entries of the returned list are ``None``, hit or miss alike (a head that read a feature
  it did not name fails at once, not only on a hit).
- **Only when the result cannot differ.** The cache is used only if the backbone has no
  trainable parameter, none of its batch-norm / dropout / drop-path layers is in training mode,
  the input needs no gradient, no autocast is active and the input is on the CPU; otherwise
  :meth:`FeatureCache.features` just runs the backbone. Features read back are the tensors that
  were saved (same values, strides and dtype), so the heads compute exactly what they would have
  (tests/models/test_feature_cache.py, tests/training/test_pure_speed.py).
- **Bounded.** Files are written atomically (a temporary file, then a rename), so concurrent jobs
  share a directory; an unreadable file is computed again. When the cache holds more than
  ``max_gb``, the least recently used files are deleted down to 80 % of it.

The run attaches a cache through the ``frozen_feature_cache`` callback
(:class:`dynaseg.training.feature_cache.FrozenFeatureCache`); a model outside a run never
uses one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dynaseg.cache_files import write_atomically

log = logging.getLogger(__name__)

SUFFIX = ".pt"


def tensor_digest(tensor: torch.Tensor, digest: hashlib._Hash | None = None) -> hashlib._Hash:
    """Update ``digest`` (a new SHA-256 if None) with a tensor's bytes, shape, strides, dtype.

    SHA-256 because CPUs with SHA extensions hash it fastest: a batch of 8×3×128² takes 0.86 ms
    here against BLAKE2b's 1.63 ms, once per training batch of a miniature job."""
    digest = digest or hashlib.sha256()
    t = tensor.detach().cpu()
    digest.update(repr((tuple(t.shape), t.stride(), str(t.dtype))).encode())
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the raw 16-bit words
        t = t.view(torch.int16)
    digest.update(t.contiguous().numpy())  # the buffer itself, not a bytes copy of it
    return digest


def why_not_cacheable(backbone: nn.Module, images: torch.Tensor) -> str | None:
    """Why the backbone's output for ``images`` may differ from a stored one (None: it cannot)."""
    if images.device.type != "cpu":
        return f"the input is on {images.device}"
    if images.requires_grad:
        return "the input requires a gradient"
    if torch.is_autocast_enabled("cpu"):
        return "autocast is active"
    if any(p.requires_grad for p in backbone.parameters()):
        return "the backbone has trainable parameters"
    for name, module in backbone.named_modules():
        if not module.training:
            continue
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return f"backbone.{name} ({type(module).__name__}) is in training mode"
        dropout = isinstance(module, nn.modules.dropout._DropoutNd)
        drop = module.p if dropout else getattr(module, "drop_prob", None)  # timm's DropPath
        if drop:
            return f"backbone.{name} ({type(module).__name__}, p={drop}) is in training mode"
    return None


class FeatureCache:
    """Backbone features by input bytes, on disk (see the module docstring).

    Args:
        directory: root of the cache (one subdirectory per backbone state and machine).
        max_gb: size above which the least recently used files are deleted (to 80 %).
    """

    def __init__(self, directory: str | Path, max_gb: float = 10.0) -> None:
        if not max_gb > 0:
            raise ValueError(f"FeatureCache(max_gb={max_gb}): expected a size > 0 in GB")
        self.root = Path(directory).expanduser()
        self.max_bytes = int(max_gb * 2**30)
        self._backbone_dirs: dict[tuple[int, tuple[int, ...]], Path] = {}
        self._size: int | None = None
        self._warned: set[str] = set()
        self._unwritable: set[Path] = set()
        self._key_texts: dict[Path, str] = {}
        self.hits = 0
        self.misses = 0

    def forget_backbones(self) -> None:
        """Digest the backbone's weights again at the next call (after weights were loaded)."""
        self._backbone_dirs.clear()

    def features(
        self, backbone: nn.Module, images: torch.Tensor, indices: Sequence[int]
    ) -> list[torch.Tensor | None]:
        """``backbone(images)`` with only ``indices`` kept (the rest ``None``), read from the
        cache when it holds them, else computed (and stored when the result cannot differ)."""
        reason = why_not_cacheable(backbone, images) if indices else "no head names a feature"
        if reason is not None:
            if reason not in self._warned:
                self._warned.add(reason)
                log.info("frozen feature cache not used: %s", reason)
            return list(backbone(images))
        keep = tuple(sorted(indices))
        path = self._directory(backbone, keep) / (tensor_digest(images).hexdigest() + SUFFIX)
        stored = self._read(path, keep)
        if stored is None:
            self.misses += 1
            feats = list(backbone(images))
            stored = {i: feats[i] for i in keep}
            self._write(path, stored)
        else:
            self.hits += 1
        count = len(getattr(backbone, "channels", [])) or max(keep) + 1
        return [stored.get(i) for i in range(count)]

    # ------------------------------------------------------------------ disk
    def _directory(self, backbone: nn.Module, keep: tuple[int, ...]) -> Path:
        key = (id(backbone), keep)
        if key not in self._backbone_dirs:
            digest = hashlib.sha256()
            for name, value in backbone.state_dict().items():
                digest.update(name.encode())
                tensor_digest(value, digest)
            machine = {
                "backbone": repr(backbone),
                "weights": digest.hexdigest(),
                "features": list(keep),
                "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "threads": torch.get_num_threads(),
            }
            text = json.dumps(machine, sort_keys=True)
            name = hashlib.sha256(text.encode()).hexdigest()[:20]
            self._backbone_dirs[key] = self.root / name
            self._key_texts[self.root / name] = text
        return self._backbone_dirs[key]

    def _read(self, path: Path, keep: tuple[int, ...]) -> dict[int, torch.Tensor] | None:
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # absent, torn or foreign: compute it again
            return None
        if not isinstance(stored, dict) or tuple(sorted(stored)) != keep:
            return None
        with contextlib.suppress(OSError):  # most recently used (unless evicted meanwhile)
            os.utime(path)
        return stored

    def _write(self, path: Path, stored: dict[int, torch.Tensor]) -> None:
        if path.parent in self._unwritable:
            return
        try:
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                (path.parent / "key.json").write_text(self._key_texts[path.parent] + "\n")
            write_atomically(path, lambda tmp: torch.save(stored, tmp))
        except OSError as err:  # an unwritable cache only costs time: keep going without it
            warnings.warn(
                f"frozen feature cache: cannot write under {path.parent} ({err}); the backbone "
                "runs without the cache",
                stacklevel=3,
            )
            self._unwritable.add(path.parent)
            return
        self._account(path.stat().st_size)

    def _account(self, added: int) -> None:
        if self._size is None:
            self._size = sum(size for _, size, _ in self._files())
        else:
            self._size += added
        if self._size > self.max_bytes:
            self._evict(int(0.8 * self.max_bytes))

    def _files(self) -> list[tuple[float, int, Path]]:
        files = []
        for path in self.root.glob(f"*/*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:  # deleted by another job meanwhile
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        return files

    def _evict(self, target: int) -> None:
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        for _, size, path in files:
            if total <= target:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
        self._size = total
