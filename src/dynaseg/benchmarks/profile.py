"""Where a training run's CPU time goes: process start, scene generation, augmentation, forward,
backward, optimizer, validation, figures, checkpoints (docs/benchmarks.md, "Where a run's time
goes").

:func:`profile_training` runs ``train(cfg)`` in this process with the data loaded in-process
(``data.num_workers=0``, so the loader's work is counted here too) and one torch thread, and
charges the process's CPU time (``time.process_time``: on a shared machine, time waiting for a
core is not counted, unlike wall time) to phases by wrapping the functions that do each phase's
work. A phase entered again inside itself (a recursive call) is counted once; phases nest as listed
in :data:`PHASES` ("of which" rows). The wrappers cost microseconds per call, unlike a tracing
profiler's per-function overhead, so the shares are those of an unprofiled run.

The command is :mod:`dynaseg.cli.profile_run` (``scripts/profile_run.py``,
``dynaseg-profile-run``); run it as a fresh process so that the start-up (interpreter, imports,
config composition) is the one a job pays.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# (phase, parent phase or None, "module:attribute" of each function whose time it is)
PHASES: list[tuple[str, str | None, list[str]]] = [
    ("data loading (train + val + test)", None,
     ["torch.utils.data.dataloader:_BaseDataLoaderIter.__next__"]),
    ("scene generation", "data loading (train + val + test)",
     ["dynaseg.data.datasets.synthetic:generate_scene",
      "dynaseg.data.datasets.synthetic_scales:generate_zoomed_scene"]),
    ("training forward + loss", None,
     ["dynaseg.training.module:SegmentationModule.training_step"]),
    ("backward", None, ["torch.autograd:backward"]),
    ("optimizer step", None, ["torch.optim.sgd:sgd", "torch.optim.adamw:adamw"]),
    ("validation / test forward + metric", None,
     ["dynaseg.training.module:SegmentationModule.validation_step",
      "dynaseg.training.module:SegmentationModule.test_step"]),
    ("figures, tables, run info", None,
     ["dynaseg.training.logging_callback:SegmentationLogging.on_fit_start",
      "dynaseg.training.logging_callback:SegmentationLogging.on_validation_epoch_end",
      "dynaseg.training.logging_callback:SegmentationLogging.on_test_epoch_end"]),
    ("checkpoint saves", None, ["lightning.pytorch.trainer.trainer:Trainer.save_checkpoint"]),
]  # fmt: skip


class PhaseClock:
    """CPU seconds per phase, charged by wrapped functions (outermost call of a phase only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth: dict[str, int] = defaultdict(int)

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth[phase]:
                return fn(*args, **kwargs)
            self._depth[phase] += 1
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.process_time() - start
                self.calls[phase] += 1
                self._depth[phase] -= 1

        return timed


@contextlib.contextmanager
def phases_timed(clock: PhaseClock) -> Iterator[None]:
    """Wrap every function of :data:`PHASES` (those that exist) for the duration."""
    undo: list[tuple[Any, str, Any]] = []
    try:
        for phase, _, targets in PHASES:
            for target in targets:
                module_name, attr = target.split(":")
                try:
                    owner: Any = importlib.import_module(module_name)
                except ImportError:
                    continue
                *path, name = attr.split(".")
                for part in path:
                    owner = getattr(owner, part)
                if name not in vars(owner):  # only functions defined there (not inherited)
                    continue
                original = vars(owner)[name]
                undo.append((owner, name, original))
                setattr(owner, name, clock.wrap(phase, original))
        yield
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


def profile_training(overrides: Sequence[str], output_dir: str | Path) -> dict[str, Any]:
    """Train with ``overrides`` (as ``src/train.py`` takes them) into ``output_dir`` and return
    ``{"phases": {phase: seconds}, "parents": {phase: parent}, "total_s", "metrics"}``: the
    process's CPU seconds by phase (see the module docstring), ``start-up`` being everything
    before training (interpreter, imports, composing the config) and ``other`` the rest
    (Lightning's loop, logging, progress bar, ...)."""
    import torch

    torch.set_num_threads(1)
    from omegaconf import open_dict

    from dynaseg.run.entry import compose
    from dynaseg.run.recipes import train

    cfg = compose("train", [*overrides, "data.num_workers=0"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)  # what Hydra's run directory would be
        cfg.paths.work_dir = str(Path.cwd())
    clock = PhaseClock()
    start_up = time.process_time()
    with phases_timed(clock):
        results = train(cfg)
    total = time.process_time()
    phases = {"start-up (interpreter, imports, config)": start_up}
    phases.update({phase: clock.seconds.get(phase, 0.0) for phase, _, _ in PHASES})
    parents = {phase: parent for phase, parent, _ in PHASES}
    top = sum(s for p, s in phases.items() if parents.get(p) is None)
    phases["other (Lightning loop, logging, ...)"] = total - top
    metrics = {
        stage: round(float(results[stage]["mIoU"]), 6)
        for stage in ("val", "test")
        if results.get(stage)
    }
    return {"phases": phases, "parents": parents, "total_s": total, "metrics": metrics}


def phase_table(profile: dict[str, Any]) -> str:
    """Markdown table of :func:`profile_training`'s result: seconds and share per phase."""
    from dynaseg.benchmarks.measure import table

    total = profile["total_s"]
    rows = []
    for phase, seconds in profile["phases"].items():
        parent = profile["parents"].get(phase)
        label = f"… of which {phase}" if parent else phase
        rows.append([label, f"{seconds:.2f}", f"{100 * seconds / total:.1f}%"])
    rows.append(["**total CPU**", f"**{total:.1f}**", "100%"])
    return table(["phase", "CPU s", "share"], rows)
