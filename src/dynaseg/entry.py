"""The front door shared by ``src/train.py``, ``src/eval.py``, ``src/predict.py`` and the scripts.

- :func:`entry_point` turns a task function into a Hydra app the way every entry point needs it:
  ``DYNASEG_ROOT`` (the repository, so ``paths.*`` point into it from any working directory),
  the ``${run_suffix:}`` resolver of the run directories (:mod:`dynaseg.runs`), ``conf/`` as the
  config directory, and a user error printed as one ``error: …`` line with exit code 1
  (:func:`~dynaseg.errors.exit_on_user_error`).
- :class:`CheckOutputPaths` (a Hydra callback, ``conf/hydra/default.yaml``) creates the run's
  directories before Hydra does, so ``paths.log_dir=/proc/x`` ends in one line naming the key
  instead of a ``FileNotFoundError`` traceback from inside Hydra.
- :func:`compose` composes ``conf/`` with overrides, as the entry points do, for the scripts,
  notebooks and tests (no run directory, no logging set-up).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dynaseg.errors import ConfigError, exit_on_user_error
from dynaseg.runs import register_resolvers

T = TypeVar("T")
ROOT_ENV = "DYNASEG_ROOT"


def repo_root() -> Path:
    """The repository whose ``conf/`` is composed: ``$DYNASEG_ROOT`` (the entry points set it to
    their own checkout), else the checkout this package lives in (``src/dynaseg/..``)."""
    return Path(os.environ.get(ROOT_ENV) or Path(__file__).resolve().parents[2])


def conf_dir() -> Path:
    return repo_root() / "conf"


def entry_point(
    script: str, config_name: str
) -> Callable[[Callable[[DictConfig], T]], Callable[[], T | None]]:
    """Decorate an entry point's task function: ``@entry_point(__file__, "train")``.

    ``script`` is the entry script's path: its checkout (``<script>/../..``) becomes
    ``DYNASEG_ROOT`` unless that is set, and its ``conf/`` the config directory. The task runs
    under :func:`~dynaseg.errors.exit_on_user_error`.
    """
    root = Path(script).resolve().parents[1]
    os.environ.setdefault(ROOT_ENV, str(root))
    register_resolvers()

    def decorate(task: Callable[[DictConfig], T]) -> Callable[[], T | None]:
        import hydra

        @functools.wraps(task)  # Hydra names the job (and its log file) after ``task``'s file
        def guarded(cfg: DictConfig) -> T:
            return exit_on_user_error(lambda: task(cfg))

        return hydra.main(
            version_base="1.3", config_path=str(root / "conf"), config_name=config_name
        )(guarded)

    return decorate


def compose(
    config_name: str = "train",
    overrides: Sequence[str] = (),
    return_hydra_config: bool = False,
    config_dir: str | Path | None = None,
) -> DictConfig:
    """``conf/<config_name>.yaml`` (of ``config_dir``, default this checkout's ``conf/``)
    composed with Hydra ``overrides``, as the entry points compose it; ``hydra.*`` (kept with
    ``return_hydra_config``) and ``paths.output_dir`` are not resolvable outside a Hydra run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir or conf_dir()), version_base="1.3"):
            return hydra_compose(config_name, list(overrides), return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


# ---------------------------------------------------------------------------- output paths
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


class CheckOutputPaths(Callback):
    """Hydra callback: an unusable output location is a user error, reported before Hydra
    creates the run directory (``hydra.run.dir``; ``hydra.sweep.dir`` for ``-m``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(lambda: check_output_paths(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(lambda: check_output_paths(config, "hydra.sweep.dir"))
