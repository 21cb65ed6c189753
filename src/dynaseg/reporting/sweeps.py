"""Reading Hydra multirun directories back: one :class:`JobRecord` per job, expected or found.

A sweep (``python src/train.py -m ...``) writes one job directory per run, each with its
``.hydra/`` config and the ``metrics.json`` of :func:`dynaseg.run.recipes.train` (metrics,
``status`` and ``provenance``: the run's overrides, resolved settings, seed, timings, commit).
:func:`load_sweep` reads those files — nothing else — and the sweep's ``multirun.yaml``, so a job
that never started is listed as ``missing``, never dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dynaseg.errors import ConfigError, UserError

DEFAULT_METRIC = ("test.mIoU", "val.mIoU")
# the checkpoints a table can report (``--checkpoint``): the weights at the end of fitting (the
# papers' practice, the default) or the best on validation mIoU (metrics.json's
# ``reported_checkpoint.last`` / ``.best``)
CHECKPOINTS = ("last", "best")


class SweepNotFoundError(UserError, FileNotFoundError):
    """The directory given is not a Hydra multirun directory."""


@dataclass
class JobRecord:
    """One job of a sweep, as far as its files tell.

    ``status`` is ``completed`` or ``failed`` (from ``metrics.json``), or ``missing``: the job
    directory has no ``metrics.json`` (killed, still running) or the sweep never created it.
    ``settings`` is the nested config the table rows/columns are matched against.
    """

    job: str
    status: str
    overrides: list[str]
    settings: dict[str, Any]
    metrics: dict[str, Any] | None = None
    error: str | None = None

    @property
    def seed(self) -> Any:
        return self.settings.get("seed")

    @property
    def provenance(self) -> dict[str, Any]:
        return (self.metrics or {}).get("provenance") or {}

    @property
    def tested_checkpoint(self) -> str:
        """The checkpoint the run's test stage evaluated (``reported_checkpoint.test``); ``last``,
        ``test_checkpoint``'s default, where metrics.json does not say."""
        return select(self.metrics or {}, "reported_checkpoint.test") or "last"

    def checkpoint_paths(self, paths: Sequence[str], checkpoint: str = "last") -> tuple[str, ...]:
        """``paths`` as they read ``checkpoint``'s scores in this run's metrics.json.

        ``test.*`` and ``test_variants.*`` hold the tested checkpoint's scores (dropped for the
        other one); ``val.*`` the last validation of the fit, the last checkpoint's (the best
        checkpoint's validation is its mIoU only: ``reported_checkpoint.best.mIoU``); any other
        path (e.g. ``provenance.*``) is no checkpoint's and stays.
        """
        if checkpoint not in CHECKPOINTS:
            raise ConfigError(
                f"checkpoint {checkpoint!r}: expected one of {', '.join(CHECKPOINTS)}"
            )
        out = []
        for path in paths:
            stage, _, key = path.partition(".")
            if stage in ("test", "test_variants"):
                if self.tested_checkpoint == checkpoint:
                    out.append(path)
            elif stage == "val" and checkpoint != "last":
                if key == "mIoU":
                    out.append(f"reported_checkpoint.{checkpoint}.mIoU")
            else:
                out.append(path)
        return tuple(out)

    def metric(
        self, paths: Sequence[str] = DEFAULT_METRIC, checkpoint: str = "last"
    ) -> float | None:
        """The first of ``paths`` (dotted, into metrics.json) this run has for ``checkpoint``
        (:meth:`checkpoint_paths`), or ``None``."""
        if self.status != "completed":
            return None
        for path in self.checkpoint_paths(paths, checkpoint):
            value = select(self.metrics or {}, path)
            if isinstance(value, int | float) and not math.isnan(value):
                return float(value)
        return None


@dataclass
class Sweep:
    """The jobs of one or more multirun directories."""

    dirs: list[Path]
    jobs: list[JobRecord]
    experiment: str | None = None
    commands: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[Any]:
        """The sweep's seeds, numbers in numeric order (6, …, 10, not 10, 6, …) before others."""
        seeds = {j.seed for j in self.jobs if j.seed is not None}
        return sorted(seeds, key=lambda s: (0, s, "") if isinstance(s, int) else (1, 0, str(s)))


def select(tree: Any, path: str) -> Any:
    """``tree["a"]["b"]`` for ``path="a.b"``; ``None`` where a key is absent."""
    node = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _assign(tree: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if isinstance(value, dict) and isinstance(node.get(keys[-1]), dict):
        node[keys[-1]].update(value)
    else:
        node[keys[-1]] = value


def _settings_from_overrides(
    overrides: Iterable[str], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A job's settings for a job whose files do not exist: the sweep's composed base config
    (``multirun.yaml``) with the job's value overrides applied. Config-group choices cannot be
    re-composed here, so such a job may match its cell only through its value overrides."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser

    settings: dict[str, Any] = copy.deepcopy(base or {})
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if "/" in key or override.is_delete():
            continue  # a config-group choice says nothing about values by itself
        _assign(settings, key, override.value())
    return settings


def _expected_jobs(sweep_dir: Path) -> tuple[list[list[str]] | None, dict[str, Any]]:
    """Each job's overrides as the basic sweeper enumerates them from ``multirun.yaml``."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None, {}
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = OmegaConf.load(path)
    base = {
        k: OmegaConf.to_container(cfg[k]) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    task = list(OmegaConf.select(cfg, "hydra.overrides.task") or [])
    # the launcher is part of how to reproduce the timings (joblib: jobs side by side)
    launcher = [
        o
        for o in OmegaConf.select(cfg, "hydra.overrides.hydra") or []
        if o.startswith("hydra/launcher=")
    ]
    choices = OmegaConf.to_container(OmegaConf.select(cfg, "hydra.runtime.choices") or {})
    arguments = [f"{k}={v}" for k, v in params.items()] + task
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
        jobs = BasicSweeper.split_arguments(parsed, None)[0]
    except Exception:  # another sweeper's syntax (e.g. Optuna ranges): count what exists
        return None, {"task": task, "choices": choices, "base": base, "launcher": launcher}
    info = {"task": task, "choices": choices, "base": base, "launcher": launcher}
    return [list(j) for j in jobs], info


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [
        p
        for p in sweep_dir.iterdir()
        if p.is_dir() and ((p / ".hydra").is_dir() or (p / "metrics.json").is_file())
    ]
    return sorted(
        dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)
    )


def _dir_overrides(job_dir: Path) -> frozenset[str]:
    path = job_dir / ".hydra/overrides.yaml"
    return frozenset(OmegaConf.load(path)) if path.is_file() else frozenset()


def _match_expected(expected: list[list[str]], found: dict[str, Path]) -> list[str]:
    """The directory name of each expected job, then the found directories no job claims.

    A job lives in ``<sweep>/<job number>`` unless the preset sets its own
    ``hydra.sweep.subdir`` (e.g. ``experiment=mini_backbone``: one directory per data config);
    such directories are matched to the expected job by their overrides. An expected job with
    no directory keeps its number (it never started).
    """
    by_overrides = {
        _dir_overrides(path): name for name, path in found.items() if not name.isdigit()
    }
    names = []
    for i, job in enumerate(expected):
        if str(i) in found:
            names.append(str(i))
        else:
            names.append(by_overrides.pop(frozenset(job), str(i)))
    return names + [n for n in found if n not in names]


# top-level keys a table may match on that metrics.json's provenance config did not record (up to
# commit 32e78a4): read from the job's .hydra/config.yaml
OUTSIDE_PROVENANCE = ("backbone_seed",)


def _outside_provenance(job_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in OUTSIDE_PROVENANCE if k not in settings]
    config_path = job_dir / ".hydra/config.yaml"
    if not missing or not config_path.is_file():
        return {}
    config = OmegaConf.load(config_path)
    return {k: config[k] for k in missing if k in config}


def _record_from_dir(job_dir: Path, label: str) -> JobRecord:
    metrics_path = job_dir / "metrics.json"
    metrics: dict[str, Any] | None = None
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as err:
            return JobRecord(label, "failed", [], {}, None, f"unreadable metrics.json: {err}")
    provenance = (metrics or {}).get("provenance") or {}
    overrides = list(provenance.get("overrides") or [])
    if not overrides and (job_dir / ".hydra/overrides.yaml").is_file():
        overrides = list(OmegaConf.load(job_dir / ".hydra/overrides.yaml"))
    if provenance.get("config"):
        settings = dict(provenance["config"])
        settings["seed"] = provenance.get("seed")
        settings.update(_outside_provenance(job_dir, settings))
    elif (job_dir / ".hydra/config.yaml").is_file():
        settings = OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra/config.yaml"))
    else:
        settings = _settings_from_overrides(overrides)
    if metrics is None:
        return JobRecord(label, "missing", overrides, settings, None, "no metrics.json")
    status = metrics.get("status", "completed")  # files from before the status field
    return JobRecord(label, status, overrides, settings, metrics, metrics.get("error"))


def _split_selection(arg: Path | str) -> tuple[Path, set[str] | None]:
    """``DIR`` or ``DIR:3,9`` (only jobs 3 and 9 of that sweep)."""
    text = str(arg)
    head, sep, tail = text.rpartition(":")
    if sep and tail and all(part.strip() for part in tail.split(",")) and "/" not in tail:
        return Path(head), {part.strip() for part in tail.split(",")}
    return Path(text), None


def load_sweep(sweep_dirs: Path | str | Sequence[Path | str]) -> Sweep:
    """Read one or more multirun directories (job labels get the directory name if several).

    ``DIR:3,9`` takes only jobs 3 and 9 of a sweep, e.g. the one run of another table's sweep
    that is identical to a cell of this one.
    """
    if isinstance(sweep_dirs, str | Path):
        sweep_dirs = [sweep_dirs]
    selections = [_split_selection(d) for d in sweep_dirs]
    dirs = [d for d, _ in selections]
    jobs: list[JobRecord] = []
    experiments: set[str] = set()
    commands: list[str] = []
    for sweep_dir, selected in selections:
        if not sweep_dir.is_dir():
            raise SweepNotFoundError(f"sweep directory '{sweep_dir}' does not exist")
        expected, info = _expected_jobs(sweep_dir)
        found = {p.name: p for p in _job_dirs(sweep_dir)}
        if expected is None and not found:
            raise SweepNotFoundError(
                f"'{sweep_dir}' holds neither multirun.yaml nor job directories with "
                "metrics.json; pass the directory of a `python src/train.py -m ...` sweep"
            )
        prefix = f"{sweep_dir.name}/" if len(dirs) > 1 else ""
        names = list(found)
        if expected is not None:
            names = _match_expected(expected, found)
        if selected is not None:
            names = [n for n in names if n in selected]
        for name in names:
            if name in found:
                jobs.append(_record_from_dir(found[name], prefix + name))
            else:  # the sweep never got to this job
                overrides = expected[int(name)] if expected is not None else []
                jobs.append(
                    JobRecord(
                        prefix + name,
                        "missing",
                        overrides,
                        _settings_from_overrides(overrides, info.get("base")),
                        None,
                        "job never started",
                    )
                )
        if info.get("choices", {}).get("experiment") and selected is None:
            experiments.add(info["choices"]["experiment"])
        if info.get("task") is not None:
            args = [*info["task"], *info.get("launcher", [])]
            command = " ".join(["python src/train.py -m", *map(shell_quote, args)])
            if selected is not None:
                plural = "s" if len(selected) > 1 else ""
                command += f"  # job{plural} {', '.join(sorted(selected, key=str))} of this sweep"
            commands.append(command)
    experiment = experiments.pop() if len(experiments) == 1 else None
    return Sweep(dirs, jobs, experiment, commands)


def shell_quote(arg: str) -> str:
    """``arg`` as one word of a shell command (quoted where the shell would split or expand it)."""
    return f"'{arg}'" if any(c in arg for c in " []{},()*?$") else arg
