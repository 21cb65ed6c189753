"""Hydra callbacks of every launch (registered in ``conf/hydra/default.yaml``).

- :class:`CheckOutputPaths`: an unusable output location is a user error, reported before Hydra
  creates the run directory.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dynaseg.errors import exit_on_user_error
from dynaseg.run.directories import check_output_paths


class CheckOutputPaths(Callback):
    """Hydra callback: an unusable output location is a user error, reported before Hydra
    creates the run directory (``hydra.run.dir``; ``hydra.sweep.dir`` for ``-m``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(lambda: check_output_paths(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(lambda: check_output_paths(config, "hydra.sweep.dir"))
