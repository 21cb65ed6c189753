"""Unique run directories (dynaseg.run.directories): two launches in the same second never share one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import CONF_DIR, ROOT


def test_run_and_sweep_dirs_carry_the_per_process_suffix() -> None:
    hydra_cfg = OmegaConf.load(CONF_DIR / "hydra" / "default.yaml")
    assert OmegaConf.to_container(hydra_cfg)["run"]["dir"].endswith(
        "/runs/${now:%Y-%m-%d_%H-%M-%S}_${run_suffix:}"
    )
    assert OmegaConf.to_container(hydra_cfg)["sweep"]["dir"].endswith("_${run_suffix:}")


@pytest.mark.slow  # two concurrent training processes; fast tier: the per-process suffix test above
def test_two_runs_started_together_write_to_different_directories(tmp_path: Path) -> None:
    """Both launched at once, with the time part of the directory forced equal (as for two jobs
    of an array starting in the same second): each gets its own directory."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    run_dir = f"{tmp_path}/runs/2026-01-01_00-00-00_${{run_suffix:}}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "src/eval.py",
                f"ckpt_path={tmp_path}/none.ckpt",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 1 and "none.ckpt' does not exist" in err
        assert "Traceback" not in err  # a user error is one line, not a traceback
    dirs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(dirs) == 2, dirs
    assert all(d.startswith("2026-01-01_00-00-00_") and len(d) == 26 for d in dirs)
    for d in dirs:  # each run's own Hydra record, not a shared one
        assert (tmp_path / "runs" / d / ".hydra" / "config.yaml").is_file()
