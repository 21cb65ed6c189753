#!/usr/bin/env python
"""Training-pipeline throughput per loader worker on ADE20K-sized images.

The command is :mod:`dynaseg.cli.bench_data_pipeline` (usage and options: ``--help``); the same as
``python -m dynaseg.cli.bench_data_pipeline`` and ``dynaseg-bench-data``.
"""

from dynaseg.cli.bench_data_pipeline import run

if __name__ == "__main__":
    run()
