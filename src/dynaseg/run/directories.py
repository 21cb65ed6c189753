"""Run directories: every launch gets its own (time plus a short unique suffix).

``conf/hydra/default.yaml`` names run and sweep directories
``<time>_${run_suffix:}``. The suffix is drawn once per process (random, 6 hex digits), so two
runs started in the same second — a job array, two shells — never share a directory, while
everything inside one run (``hydra.run.dir``, ``paths.output_dir``, a sweep's jobs) agrees on it.
The entry points register the resolver (:func:`dynaseg.run.entry.entry_point`) before Hydra
composes the config.

:func:`check_output_paths` creates the directories a run writes to before Hydra does, so
``paths.log_dir=/proc/x`` ends in one line naming the key instead of a ``FileNotFoundError``
traceback from inside Hydra (called by :class:`dynaseg.run.hydra_callbacks.CheckOutputPaths`).
:func:`check_input_paths` checks the checkpoint a run reads (``ckpt_path``) before the task
imports torch (called by :func:`dynaseg.run.entry.validated`), so a mistyped path costs well
under a second, not the seconds of importing the model stack.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dynaseg.errors import CheckpointError, CheckpointNotFoundError, ConfigError

RUN_SUFFIX = secrets.token_hex(3)
_SHOWN = 4  # .ckpt files named when a directory is given


def register_resolvers() -> None:
    """Register ``${run_suffix:}`` (idempotent; cached like Hydra's ``${now:}`` so a sweep's
    job configs, which copy the master config's resolver cache, see the same value)."""
    if not OmegaConf.has_resolver("run_suffix"):
        OmegaConf.register_new_resolver("run_suffix", lambda: RUN_SUFFIX, use_cache=True)


register_resolvers()


def _resolved(cfg: DictConfig, key: str) -> str | None:
    """``key``'s value, or ``None`` when unset or not resolvable yet (``${hydra:runtime…}``)."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except Exception:
        return None
    return str(value) if value not in (None, "", "???") else None


def _is_under(path: Path, parent: Path) -> bool:
    return path.absolute().is_relative_to(parent.absolute())


def make_output_dir(key: str, path: str | Path) -> Path:
    """Create ``path`` (and its parents), or say which config key names an unusable location."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"{key}='{path}': cannot create this directory ({reason}); expected a writable "
            "directory path"
        ) from None
    return path


def check_output_paths(cfg: DictConfig, run_dir_key: str) -> None:
    """Create the directories a run writes to, first the ones the user may have set:
    ``paths.log_dir`` (when the run directory lies under it), ``paths.output_dir`` and a
    top-level ``output_dir`` (when set to a plain path), then the run/sweep directory itself."""
    run_dir = _resolved(cfg, run_dir_key)
    log_dir = _resolved(cfg, "paths.log_dir")
    checks = []
    if log_dir and run_dir and _is_under(Path(run_dir), Path(log_dir)):
        checks.append(("paths.log_dir", log_dir))
    for key in ("paths.output_dir", "output_dir"):
        if value := _resolved(cfg, key):
            checks.append((key, value))
    if run_dir:
        checks.append((run_dir_key, run_dir))
    for key, path in checks:
        make_output_dir(key, path)


def checkpoint_file(path: str | Path, key: str = "ckpt_path") -> Path:
    """``path`` as an existing file; names ``key`` and what was found otherwise."""
    ckpt = Path(path).expanduser()
    if ckpt.is_dir():
        found = sorted(p.name for p in ckpt.rglob("*.ckpt"))[:_SHOWN]
        hint = f"; it holds {', '.join(found)}" if found else "; it holds no .ckpt file"
        raise CheckpointError(f"{key}='{ckpt}' is a directory; expected a .ckpt file{hint}")
    if not ckpt.is_file():
        raise CheckpointNotFoundError(f"{key}='{ckpt}' does not exist (expected a .ckpt file)")
    return ckpt


def check_input_paths(cfg: DictConfig) -> None:
    """The checkpoint a run reads (``ckpt_path`` of train, eval and predict), if one is set, is
    an existing file (:func:`checkpoint_file`'s messages); its contents are checked on loading."""
    if ckpt := _resolved(cfg, "ckpt_path"):
        checkpoint_file(ckpt, "ckpt_path")
