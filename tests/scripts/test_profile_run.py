"""dynaseg.perf_profile: CPU time charged to phases by wrapped functions."""

from __future__ import annotations

import time

import torch

from dynaseg import perf_profile
from dynaseg.perf_profile import PhaseClock, phase_table, phases_timed


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_phase_is_charged_once_for_nested_calls() -> None:
    clock = PhaseClock()

    def work(depth: int) -> int:
        burn(0.02)
        return depth if depth == 0 else wrapped(depth - 1)

    wrapped = clock.wrap("work", work)
    start = time.process_time()
    assert wrapped(2) == 0
    spent = time.process_time() - start
    assert clock.calls["work"] == 1  # the two inner calls are inside the outer one
    assert 0.06 <= clock.seconds["work"] <= spent


def test_phases_timed_wraps_the_listed_functions_and_restores_them() -> None:
    original = torch.autograd.backward
    clock = PhaseClock()
    with phases_timed(clock):
        assert torch.autograd.backward is not original
        x = torch.ones(3, requires_grad=True)
        (x * 2).sum().backward()
    assert torch.autograd.backward is original
    assert clock.calls["backward"] == 1 and torch.equal(x.grad, torch.full((3,), 2.0))
    phases = {phase for phase, _, _ in perf_profile.PHASES}
    assert {"scene generation", "backward", "checkpoint saves"} <= phases


def test_phase_table_gives_seconds_and_shares() -> None:
    profile = {
        "phases": {"start-up": 2.0, "data": 3.0, "scene generation": 1.5, "other": 5.0},
        "parents": {"scene generation": "data"},
        "total_s": 10.0,
    }
    lines = phase_table(profile).splitlines()
    assert lines[2:] == [
        "| start-up | 2.00 | 20.0% |",
        "| data | 3.00 | 30.0% |",
        "| … of which scene generation | 1.50 | 15.0% |",
        "| other | 5.00 | 50.0% |",
        "| **total CPU** | **10.0** | 100% |",
    ]
