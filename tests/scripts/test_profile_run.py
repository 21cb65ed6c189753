"""dynaseg.benchmarks.profile (scripts/profile_run.py = dynaseg.cli.profile_run): CPU time charged
to phases by wrapped functions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from dynaseg.benchmarks import profile
from dynaseg.benchmarks.profile import PhaseClock, phase_table, phases_timed
from dynaseg.cli.profile_run import main as profile_run_main
from helpers import NO_FIGURES, TINY


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
    phases = {phase for phase, _, _ in profile.PHASES}
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


def test_profile_run_trains_and_charges_every_phase(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The command end to end on a tiny run: its table has a row per phase, the top-level rows add
    up to the total, and the printed mIoU is the run's metrics.json."""
    quiet = ["~logger", "callbacks.lr_monitor=null", "callbacks.rich_progress_bar=null"]
    overrides = [*TINY, *NO_FIGURES, *quiet, "trainer.max_steps=2", "trainer.val_check_interval=2"]
    threads = torch.get_num_threads()
    try:
        assert profile_run_main([*overrides, "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    table = out[out.index("| phase | CPU s | share |") :].splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:] if line.startswith("|")}
    for phase, _, _ in profile.PHASES:
        assert any(phase in label for label in rows), phase
    seconds = {
        label: float(line.split(" | ")[1].strip("* "))
        for label, line in rows.items()
        if not label.startswith("**")
    }
    total = float(rows["**total CPU**"].split(" | ")[1].strip("* "))
    top = sum(s for label, s in seconds.items() if not label.startswith("… of which"))
    assert top == pytest.approx(total, abs=0.1 + 0.01 * len(seconds))
    # a nested phase is part of its parent's time
    assert seconds["… of which scene generation"] <= seconds["data loading (train + val + test)"]
    val = json.loads((tmp_path / "metrics.json").read_text())["val"]["mIoU"]
    assert f"'val': {round(float(val), 6)}" in out
