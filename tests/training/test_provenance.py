"""dynaseg.run.provenance: timings, git commit, and the run description outside Hydra."""

from __future__ import annotations

import time
from pathlib import Path

from torch import nn

from dynaseg.environment import git_info as git_commit
from dynaseg.run.provenance import RunClock, count_parameters, describe_run
from helpers import ROOT, TINY, compose_config


def test_clock_counts_cpu_of_busy_work() -> None:
    clock = RunClock()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    elapsed = clock.elapsed()
    assert elapsed["cpu_time_s"] >= 0.04 and elapsed["wall_time_s"] >= 0.04


def test_git_commit_inside_and_outside_a_repository(tmp_path: Path) -> None:
    inside = git_commit(ROOT)
    assert len(inside["commit"]) == 40 and isinstance(inside["dirty"], bool)
    assert git_commit(tmp_path) == {"commit": None, "dirty": None}


def test_describe_run_resolves_the_head_and_counts_parameters() -> None:
    cfg = compose_config("train", [*TINY, "model.net.decode_head.filter_sizes=[1,3]", "seed=7"])

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decode_head = nn.Linear(3, 2)  # 8 parameters
            self.backbone = nn.Linear(2, 2)  # 6 parameters

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

    info = describe_run(cfg, Model())
    head = info["config"]["model"]["net"]["decode_head"]
    assert head["filter_sizes"] == [1, 3] and head["filter_type"] == "dynamic"
    assert info["seed"] == 7 and info["overrides"] == []  # composed outside a Hydra run
    assert info["params"] == {"total": 14, "decode_head": 8, "auxiliary_head": None, "backbone": 6}
    assert info["config"]["data"]["crop_size"] == [64, 64]
    assert count_parameters(None) is None
