"""Training: the LightningModule, LR schedule and the train/eval recipes behind the entry points."""

from dynaseg.training.module import SegmentationModule
from dynaseg.training.schedules import poly_lr_lambda

__all__ = ["SegmentationModule", "poly_lr_lambda"]
