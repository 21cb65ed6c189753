"""Run directories: every launch gets its own (time plus a short unique suffix).

``conf/hydra/default.yaml`` names run and sweep directories
``<time>_${run_suffix:}``. The suffix is drawn once per process (random, 6 hex digits), so two
runs started in the same second — a job array, two shells — never share a directory, while
everything inside one run (``hydra.run.dir``, ``paths.output_dir``, a sweep's jobs) agrees on it.
The entry points register the resolver (:func:`dynaseg.entry.entry_point`) before Hydra
composes the config.
"""

from __future__ import annotations

import secrets

from omegaconf import OmegaConf

RUN_SUFFIX = secrets.token_hex(3)


def register_resolvers() -> None:
    """Register ``${run_suffix:}`` (idempotent; cached like Hydra's ``${now:}`` so a sweep's
    job configs, which copy the master config's resolver cache, see the same value)."""
    if not OmegaConf.has_resolver("run_suffix"):
        OmegaConf.register_new_resolver("run_suffix", lambda: RUN_SUFFIX, use_cache=True)


register_resolvers()
