"""The run-level switch of the frozen backbone's feature cache (``callbacks.frozen_feature_cache``).

:class:`FrozenFeatureCache` attaches a :class:`~dynaseg.models.feature_cache.FeatureCache` to the
module's segmentor for the run and detaches it at the end, so a checkpoint opened elsewhere (a
notebook, ``eval.py`` without the callback) never reads or writes it. The cache is used only while
the backbone is frozen and its results cannot differ (see :mod:`dynaseg.models.feature_cache`);
``+scale=mini`` switches it on for the miniature sweeps, whose arms share one frozen backbone.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from dynaseg.models.feature_cache import FeatureCache


class FrozenFeatureCache(L.Callback):
    """Cache the frozen backbone's features of every batch under ``directory`` for this run.

    Args:
        directory: root of the cache, shared by the jobs of a sweep (``+scale=mini``:
            ``${paths.data_dir}/feature_cache``).
        max_gb: size above which the least recently used files are deleted (to 80 %).
    """

    def __init__(self, directory: str | Path, max_gb: float = 10.0) -> None:
        self.cache = FeatureCache(directory, max_gb)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.net.feature_cache = self.cache

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.net.feature_cache = None
        cache = self.cache
        if cache.hits or cache.misses:
            rank_zero_info(
                f"frozen feature cache ({cache.root}): {cache.hits} batches read, "
                f"{cache.misses} computed"
            )

    # the weights are loaded (init_from, ckpt_path) after setup: digest them again at each start
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.cache.forget_backbones()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.cache.forget_backbones()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.cache.forget_backbones()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.cache.forget_backbones()
