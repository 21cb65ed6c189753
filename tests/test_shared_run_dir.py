"""The session-wide run directory helper that lets xdist workers share one trained run."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import shared_run_dir


def test_made_once_and_a_failed_make_leaves_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    calls: list[Path] = []

    def make(path: Path) -> None:
        calls.append(path)
        (path / "weights.txt").write_text("1")

    first = shared_run_dir(tmp_path_factory, "shared_once_probe", make)
    second = shared_run_dir(tmp_path_factory, "shared_once_probe", make)
    assert first == second and calls == [first]
    assert (first / "weights.txt").read_text() == "1"

    def broken(path: Path) -> None:
        (path / "half.txt").write_text("x")
        raise RuntimeError("training failed")

    with pytest.raises(RuntimeError, match="training failed"):
        shared_run_dir(tmp_path_factory, "shared_broken_probe", broken)
    assert not (first.parent / "shared_broken_probe").exists()
    # the next caller tries again and can succeed
    again = shared_run_dir(tmp_path_factory, "shared_broken_probe", make)
    assert (again / "weights.txt").is_file() and len(calls) == 2
