"""Errors meant for people: the entry points print their message without a traceback.

Every error a user can cause — a config value, a file on disk, a checkpoint, a diverging loss —
is a :class:`UserError`. The entry points (``src/train.py``, ``src/eval.py``) print it as one
``error: …`` line and exit with code 1 (:func:`user_error_in`, :func:`exit_on_user_error`);
``HYDRA_FULL_ERROR=1`` shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Bad input (a file, a config value, a dataset on disk); the message says what was expected."""


class ConfigError(UserError, ValueError):
    """A config value does not fit (names the key and what was expected)."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint path does not exist."""


class CheckpointError(UserError):
    """A file is not a usable checkpoint (not a checkpoint at all, a directory, another model)."""


class DatasetError(UserError, RuntimeError):
    """A dataset on disk is not as expected; the message names the file and what was expected."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset root (or a required list file) does not exist."""


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN/inf (names the step and the last good checkpoint)."""


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT stopped training after a resumable checkpoint was written.

    Not a :class:`UserError` (nothing was wrong with the input): the entry point prints the
    message (checkpoint path and resume command) and exits with ``128 + signal number``.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class ArgumentError(ConfigError):
    """A constructor argument out of range: ``<key>=<value>: expected <expected>``.

    ``key`` starts as the argument's name in its own config node (``channels``); whoever builds
    the object puts the node's key path in front (:meth:`under`), so users read
    ``model.net.decode_head.channels=0: expected an integer ≥ 1``.
    """

    def __init__(self, key: str, value: Any, expected: str, owner: str = "") -> None:
        self.key, self.value, self.expected, self.owner = key, value, expected, owner
        where = f" ({owner})" if owner else ""
        super().__init__(f"{key}={value!r}: expected {expected}{where}")

    def under(self, prefix: str, owner: str = "") -> ArgumentError:
        return ArgumentError(f"{prefix}.{self.key}", self.value, self.expected, owner or self.owner)


def check_arg(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise :class:`ArgumentError` ``"<key>=<value>: expected <expected>"`` unless ``ok``."""
    if not ok:
        raise ArgumentError(key, value, expected)


def causes(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from / during (Hydra wraps constructor errors in
    ``InstantiationException`` ``from`` the original)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def user_error_in(err: BaseException) -> UserError | None:
    """The :class:`UserError` behind ``err`` (itself or a cause), if any."""
    return next((e for e in causes(err) if isinstance(e, UserError)), None)


def full_traceback_wanted() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def exit_on_user_error(fn: Callable[[], T]) -> T | None:
    """Run ``fn``; a user error (possibly wrapped by Hydra/Lightning) becomes one ``error: …``
    line and exit code 1, an interruption its message and ``128 + signal``. Anything else (a bug)
    keeps its traceback. ``HYDRA_FULL_ERROR=1`` re-raises everything.

    In a job of a ``-m`` sweep a failure ends that job only: the error line (a bug: its
    traceback) is printed, ``None`` returned, and the sweep goes on; the job's ``metrics.json``
    says ``status: failed``, and the sweep ends with the summary table and exit code 1
    (:class:`dynaseg.run.hydra_callbacks.MultirunSummary`). Raising instead would make Hydra skip the summary
    and end the sweep in a traceback.
    """
    try:
        return fn()
    except Exception as err:
        if full_traceback_wanted():
            raise
        interrupted = next((e for e in causes(err) if isinstance(e, TrainingInterrupted)), None)
        if interrupted is not None:
            exit_with_message(str(interrupted), 128 + interrupted.signum)
        user = user_error_in(err)
        if _in_multirun_job():
            sys.stdout.flush()
            if user is None:
                traceback.print_exception(err)
            else:
                print(f"error: {user}", file=sys.stderr, flush=True)
            return None
        if user is None:
            raise
        exit_with_message(f"error: {user}", 1)


def _in_multirun_job() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


def exit_with_message(message: str, code: int) -> NoReturn:
    """Print ``message`` on stderr (after what stdout holds) and exit with ``code``."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)
