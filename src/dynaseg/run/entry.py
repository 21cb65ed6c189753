"""The front door shared by ``src/train.py``, ``src/eval.py``, ``src/predict.py`` and the scripts.

- :func:`entry_point` turns a task function into a Hydra app the way every entry point needs it:
  ``DYNASEG_ROOT`` (the repository, so ``paths.*`` point into it from any working directory),
  the ``${run_suffix:}`` resolver of the run directories (:mod:`dynaseg.run.directories`), ``conf/`` as the
  config directory, the composed config checked against its typed schemas before the task runs
  (:func:`validated`, :mod:`dynaseg.config_schema`), and a user error printed as one
  ``error: …`` line with exit code 1 (:func:`~dynaseg.errors.exit_on_user_error`).
- At the process's exit the interpreter's final garbage collections are skipped
  (:func:`freeze_at_exit`): they only traverse the libraries' objects and took ≈ 1.2 s of every
  run here.
- :func:`compose` composes ``conf/`` with overrides, as the entry points do, for the scripts,
  notebooks and tests (no run directory, no logging set-up).
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from omegaconf import DictConfig

from dynaseg.environment import ROOT_ENV, repo_root
from dynaseg.errors import exit_on_user_error
from dynaseg.run.directories import check_input_paths, register_resolvers

T = TypeVar("T")
_FREEZE_REGISTERED = False  # freeze_at_exit has registered gc.freeze in this process


def conf_dir() -> Path:
    return repo_root() / "conf"


def freeze_at_exit() -> None:
    """Register :func:`gc.freeze` to run at exit, after every exit handler registered later.

    When a process that imported torch, Lightning and their dependencies (``torch._dynamo``,
    sympy, scipy, matplotlib) ends, the interpreter's last garbage collections walk the millions
    of objects those imports created: ≈ 1.2 s of CPU and wall here (a process that only imports
    them exits in 6.5 s instead of 5.3 s), 4 % of a miniature job. Frozen objects are left out of
    those collections; objects outside reference cycles are still freed by reference counting as
    the modules are cleared. Exit handlers run last-registered first, and an entry point registers
    this one before the task imports anything that registers its own (``logging``, W&B,
    multiprocessing's, Lightning's), so all of those run before it; loggers and loader workers
    are closed even earlier, by Lightning's teardown.

    What it gives up: an object that is still in a reference cycle at exit is never finalized,
    so a file it holds open and unflushed loses its buffered data, and a ``NamedTemporaryFile``
    it holds stays on disk — as when the process is killed, and as Python itself does not
    promise otherwise. The package writes its files in ``with`` blocks or with
    :func:`dynaseg.cache_files.write_atomically` and closes them before the run returns.
    Registered once per process."""
    global _FREEZE_REGISTERED
    if not _FREEZE_REGISTERED:  # the first registration is the one that runs last
        atexit.register(gc.freeze)
        _FREEZE_REGISTERED = True


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
    freeze_at_exit()

    def decorate(task: Callable[[DictConfig], T]) -> Callable[[], T | None]:
        import hydra

        @functools.wraps(task)  # Hydra names the job (and its log file) after ``task``'s file
        def guarded(cfg: DictConfig) -> T:
            return exit_on_user_error(lambda: validated(task)(cfg))

        return hydra.main(
            version_base="1.3", config_path=str(root / "conf"), config_name=config_name
        )(guarded)

    return decorate


def validated(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """``task`` preceded by the check of the composed config's values against their typed schemas
    (:func:`dynaseg.config_schema.validate_config`) and of the checkpoint it reads
    (:func:`~dynaseg.run.directories.check_input_paths`): a wrong type, range or path is one
    ``error:`` line before anything is built."""

    def run(cfg: DictConfig) -> T:
        from dynaseg.config_schema import validate_config

        validate_config(cfg)
        check_input_paths(cfg)
        return task(cfg)

    return run


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
