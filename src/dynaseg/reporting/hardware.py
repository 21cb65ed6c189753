"""Whether a table's runs ran on one CPU/library setup: read from each ``metrics.json``'s
``provenance.hardware`` (written by :func:`dynaseg.environment.hardware_info`).

The same commit, config and seed repeat exactly only on the same kernels and threads; runs from
several setups agree only statistically (docs/reproducing.md). :func:`mixed_hardware` is the
flag a table prints when its cells come from more than one setup; it works on the plain dicts,
so it needs nothing but the files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from dynaseg.reporting.sweeps import Sweep

# provenance.hardware fields whose difference makes results differ beyond float rounding order
SETUP_KEYS = ("cpu_model", "isa_flags", "cpu_capability", "torch", "onednn", "mkl", "torch_threads")


def setup_of(hw: Mapping[str, Any]) -> tuple[Any, ...]:
    """The fields of ``provenance.hardware`` that decide which kernels a run used, comparable."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in (hw.get(k) for k in SETUP_KEYS))


def describe_setup(setup: tuple[Any, ...]) -> str:
    """Short text of a setup: ``AMD EPYC, AVX2 (avx avx2 fma), torch 2.14.1, …, 2 threads``."""
    fields = dict(zip(SETUP_KEYS, setup, strict=True))
    flags = " ".join(fields["isa_flags"] or ()) or "no AVX"
    return (
        f"{fields['cpu_model']}, {fields['cpu_capability']} ({flags}), torch {fields['torch']}, "
        f"oneDNN {fields['onednn']}, MKL {fields['mkl']}, {fields['torch_threads']} threads"
    )


def mixed_hardware(hardware_records: Iterable[Mapping[str, Any] | None]) -> str | None:
    """``None`` when every run (its ``provenance.hardware``) ran on the same setup
    (:data:`SETUP_KEYS`), else the flag a table prints: how many setups, with how many runs each.
    Runs from before these fields were recorded (no ``cpu_model``) are left out: unknown."""
    known = [hw for hw in hardware_records if hw and hw.get("cpu_model") is not None]
    setups = Counter(setup_of(hw) for hw in known)
    if len(setups) <= 1:
        return None
    parts = "; ".join(f"{n} run(s) on {describe_setup(s)}" for s, n in setups.most_common())
    return (
        f"MIXED HARDWARE: the cells come from {len(setups)} CPU/library setups ({parts}); "
        "they repeat only statistically, not exactly (docs/reproducing.md)"
    )


def sweep_hardware_flag(sweep: Sweep) -> str | None:
    """:func:`mixed_hardware` over the completed jobs of ``sweep`` (those the cells hold)."""
    return mixed_hardware(
        job.provenance.get("hardware") for job in sweep.jobs if job.status == "completed"
    )
