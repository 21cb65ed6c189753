"""The job lifecycle around a model: entry points and config composition, run directories, the
train / evaluate / predict recipes, checkpoints, console, fault tolerance, recipe manifest,
provenance, sweep jobs, loggers and the Hydra callbacks. What trains (the LightningModule,
losses, schedules, weights) lives in :mod:`dynaseg.training`; the run package drives it.
"""
