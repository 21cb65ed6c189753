"""conf/logger/* and dynaseg.run.loggers: several loggers at once, W&B groups per sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from omegaconf import open_dict

from dynaseg.environment import git_info, hardware_info
from dynaseg.run.loggers import sweep_context, wandb_logger
from dynaseg.run.recipes import instantiate_group
from helpers import ROOT, compose_config, wandb_records


def test_list_of_loggers_composes_and_builds_each(tmp_path: Path) -> None:
    cfg = compose_config(overrides=["logger=[csv,tensorboard,wandb]"], output_dir=tmp_path)
    assert list(cfg.logger) == ["csv", "tensorboard", "wandb"]
    with open_dict(cfg):
        cfg.logger.wandb.offline = True
    loggers = instantiate_group(cfg.logger)
    assert [type(lg) for lg in loggers] == [CSVLogger, TensorBoardLogger, WandbLogger]
    assert loggers[0].log_dir.startswith(str(tmp_path))
    assert loggers[1].log_dir.startswith(str(tmp_path))
    wandb_init = loggers[2]._wandb_init
    assert wandb_init["project"] == "dynaseg" and wandb_init["dir"] == str(tmp_path)
    assert wandb_init["tags"] == list(cfg.tags) and wandb_init["group"] is None  # single run


def test_wandb_group_is_the_sweep_dir_in_a_multirun(tmp_path: Path) -> None:
    from hydra.types import RunMode

    from dynaseg.run.entry import compose

    overrides = ["hydra.sweep.dir=/sweeps/dmnet_table1", "hydra.job.num=3", "seed=7"]
    cfg = compose("train", overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.job.override_dirname = "seed=7"
    HydraConfig.instance().set_config(cfg)
    try:
        assert sweep_context() == {"group": "dmnet_table1", "job_num": 3, "overrides": "seed=7"}
        logger = wandb_logger(name="train", save_dir=str(tmp_path), offline=True)
        assert logger._wandb_init["group"] == "dmnet_table1"
        assert logger._wandb_init["name"] == "train-3"
        assert logger._wandb_init["notes"] == "seed=7"
        # an explicit group wins
        explicit = wandb_logger(group="mine", save_dir=str(tmp_path), offline=True)
        assert explicit._wandb_init["group"] == "mine"
    finally:
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
    assert sweep_context() is None


def test_run_info_names_the_commit_and_the_hardware(tmp_path: Path) -> None:
    info = git_info(ROOT)
    if info["commit"] is not None:  # a git checkout (not an sdist)
        assert len(info["commit"]) == 40 and isinstance(info["dirty"], bool)
    assert git_info(tmp_path) == {"commit": None, "dirty": None}
    hw = hardware_info()
    assert hw["cpus"] >= 1 and hw["torch"] and isinstance(hw["gpus"], list)


@pytest.mark.slow
def test_multirun_jobs_are_separate_wandb_runs_in_one_group(tmp_path: Path) -> None:
    from helpers import TINY, run_python

    proc = run_python(
        "src/train.py",
        "-m",
        *TINY,
        "logger=wandb",
        "logger.wandb.offline=true",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
        "test=false",
        "extras.print_config=false",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path}/sweep_x",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = []
    for job in ("0", "1"):
        (run_dir,) = (tmp_path / "sweep_x" / job / "wandb").glob("offline-run-*")
        for record in wandb_records(next(run_dir.glob("run-*.wandb"))):
            if record.WhichOneof("record_type") == "run":
                runs.append((record.run.run_id, record.run.run_group, record.run.display_name))
    assert len({r[0] for r in runs}) == 2  # two runs, not one merged
    assert {r[1] for r in runs} == {"sweep_x"}
    assert sorted(r[2] for r in runs) == ["train-0", "train-1"]
