"""The performance suite (``scripts/benchmark.py``): :mod:`.measure` (min-of-N timing, tables,
peaks), :mod:`.suite` (the sections and the report), :mod:`.train_step` (the DMNet train step,
one fresh process per variant), :mod:`.data_pipeline` (loader throughput per worker),
:mod:`.profile` (a training run's CPU time by phase, ``scripts/profile_run.py``)."""
