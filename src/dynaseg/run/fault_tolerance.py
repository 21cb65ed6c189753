"""Interruptions never lose work, and a resumed run continues exactly.

:class:`FaultTolerance` (``callbacks.fault_tolerance``)

- owns ``last.ckpt``: writes it every ``every_n_steps`` optimizer steps (independent of
  validation), after every validation and at the end of fit — to a temporary file first, so a
  kill mid-write never leaves a broken ``last.ckpt``;
- on SIGTERM (cluster preemption) or SIGINT (Ctrl+C) finishes the current step — or the running
  validation — writes ``last.ckpt`` at that step and stops with :class:`TrainingInterrupted`
  (the entry point prints the checkpoint and the resume command, exit code ``128 + signal``);
  a second Ctrl+C aborts at once;
- re-seeds torch's RNG before every training step from ``(seed, step, rank)``, so dropout and any
  other in-model randomness of step ``k`` do not depend on what ran before (validation, a
  resume): together with :mod:`dynaseg.data.sampling` a run resumed from any step reaches the
  same weights as an uninterrupted one;
- keeps in the checkpoint what a resume needs to check or restore: the seed, ``max_steps`` (a
  resume that changes the poly schedule says so) and the W&B run id (the resumed run continues it).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_warn

from dynaseg.data.sampling import mix_seed
from dynaseg.errors import TrainingInterrupted

RUN_STATE_KEY = "dynaseg_run"  # top-level checkpoint key holding RunState fields
SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class FaultTolerance(Checkpoint):
    """See the module docstring.

    A :class:`~lightning.pytorch.callbacks.Checkpoint` subclass so Lightning runs it after the
    other callbacks (and after ``ModelCheckpoint`` when listed after it): an interrupt during
    validation is handled once the best checkpoint of that validation is saved.

    Args:
        dirpath: directory of ``last.ckpt`` (the run's ``checkpoints/``).
        every_n_steps: write ``last.ckpt`` every N optimizer steps (``0``/``null``: only on
            interrupts and where ``ModelCheckpoint`` writes it).
        filename: checkpoint file name without extension.
        resume_command: the command line to print in the interrupt message (``{ckpt}`` is replaced
            by the checkpoint path); by default the current command with ``ckpt_path=…`` set.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_steps: int | None = 500,
        filename: str = "last",
        resume_command: str | None = None,
    ) -> None:
        super().__init__()
        self.dirpath = Path(dirpath)
        self.every_n_steps = int(every_n_steps or 0)
        self.filename = filename
        self.resume_command = resume_command
        self.seed: int | None = None
        self._signum: int | None = None
        self._handler_pid: int | None = None  # the process the handlers are for
        self._restored: dict[str, Any] = {}
        self.last_path: Path | None = None  # the most recent checkpoint this callback wrote
        self._saved_step = -1

    @property
    def path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._handler_pid:
            # a loader worker forked after the handlers were installed, hit before its
            # worker_init_fn set the signal to be ignored: the main process decides, once
            return
        if signum == signal.SIGINT and self._signum is not None:
            raise KeyboardInterrupt  # second Ctrl+C: stop now, no checkpoint
        if self._signum is None:
            name = SIGNAL_NAMES.get(signum, str(signum))
            print(
                f"\n{name} received: finishing the current step, then saving a checkpoint "
                "(Ctrl+C again to abort without one)",
                file=sys.stderr,
                flush=True,
            )
        self._signum = signum

    def _install_handlers(self) -> None:
        # Lightning registers its own SIGTERM handler (which ends fit with exit code 0 and no
        # checkpoint) just before the sanity check; replace it. Lightning's teardown restores the
        # handlers that were in place before fit.
        self._handler_pid = os.getpid()
        for sig in SIGNAL_NAMES:
            signal.signal(sig, self._on_signal)

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_handlers()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_handlers()
        if self.seed is None:
            self.seed = int(self._restored.get("seed", torch.initial_seed()))
        self._report_schedule_change(trainer)

    def _signal_received(self, trainer: L.Trainer) -> bool:
        flag = self._signum is not None
        if trainer.world_size > 1:  # every rank stops at the same step
            flag = trainer.strategy.reduce_boolean_decision(flag, all=False)
            if flag and self._signum is None:
                self._signum = signal.SIGTERM
        return flag

    # ------------------------------------------------------------------ training
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        assert self.seed is not None
        seed = mix_seed(self.seed, trainer.global_step, trainer.global_rank)
        if pl_module.device.type == "cpu":
            # the one generator a CPU step draws from; torch.manual_seed would also queue a lazy
            # CUDA seeding with a formatted stack trace on a CUDA build (≈ 1 ms a step here)
            torch.default_generator.manual_seed(seed)
        else:
            torch.manual_seed(seed)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._signal_received(trainer):
            self._stop(trainer)
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        if self._signal_received(trainer):
            self._stop(trainer)
        self.save(trainer)  # the state after each validation, as ModelCheckpoint's save_last did

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_step != trainer.global_step:
            self.save(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        path = self.save(trainer)
        signum = self._signum or signal.SIGTERM
        name = SIGNAL_NAMES.get(signum, str(signum))
        command = (self.resume_command or default_resume_command()).replace("{ckpt}", str(path))
        raise TrainingInterrupted(
            f"interrupted by {name} at step {trainer.global_step}: resumable checkpoint "
            f"{path}\nresume with: {command}",
            signum,
        )

    def save(self, trainer: L.Trainer) -> Path:
        """Write ``last.ckpt`` atomically (temporary file, then rename)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # weights_only=False: a full checkpoint (optimizer, loops, callbacks) that can resume;
        # saying so also keeps Lightning from logging that it chose this default on every save
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("fault_tolerance_save")
        self.last_path, self._saved_step = self.path, trainer.global_step
        return self.path

    # ------------------------------------------------------------------ state
    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_STATE_KEY] = {
            "seed": self.seed,
            "max_steps": int(trainer.max_steps),
            "wandb_run_id": wandb_run_id(trainer),
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._restored = dict(checkpoint.get(RUN_STATE_KEY) or {})
        if self._restored.get("seed") is not None:
            self.seed = int(self._restored["seed"])

    def _report_schedule_change(self, trainer: L.Trainer) -> None:
        before = self._restored.get("max_steps")
        if before is None or int(before) == int(trainer.max_steps):
            return
        step = trainer.global_step
        lrs = ""
        configs = trainer.lr_scheduler_configs
        if configs and trainer.optimizers:
            sched = configs[0].scheduler
            old = trainer.optimizers[0].param_groups[0]["lr"]
            new = getattr(sched, "lr_lambdas", [lambda _: 1.0])[0](sched.last_epoch)
            new *= sched.base_lrs[0] if hasattr(sched, "base_lrs") else 1.0
            lrs = f"; learning rate {old:.3g} → {new:.3g} at step {step}"
        rank_zero_warn(
            f"resuming at step {step} with trainer.max_steps={trainer.max_steps} but the checkpoint "
            f"was trained for max_steps={before}: the poly schedule is recomputed over "
            f"{trainer.max_steps} steps{lrs}"
        )


def wandb_run_id(trainer: L.Trainer) -> str | None:
    """The id of the run's W&B logger, if any (stored so a resume continues the same W&B run)."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                return str(logger.version) if logger.version else None
            except Exception:  # wandb not initialised (e.g. a failed login): nothing to resume
                return None
    return None


def default_resume_command() -> str:
    """The current command line with ``ckpt_path={ckpt}`` (replacing any ckpt_path given)."""
    args = [a for a in sys.argv[1:] if not a.startswith(("ckpt_path=", "+ckpt_path="))]
    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "src/train.py"
    return " ".join(["python", script, *args, "ckpt_path={ckpt}"])
