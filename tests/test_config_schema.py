"""Every user-edited config value is checked against its typed schema before anything is built
(dynaseg.config_schema): one ``error: <key>=<value>: expected <what>`` line, exit code 1.

The wrong values run in-process through the entry points' own check (``validated``), parsed as
Hydra parses the command line; two subprocess runs pin the wiring of src/train.py and src/eval.py.
"""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from dynaseg.cli.config_docs import main as config_docs_main
from dynaseg.config_schema import (
    DOC_BEGIN,
    DOC_END,
    check_values,
    schema_markdown,
    schema_rows,
    validate_config,
)
from dynaseg.errors import ArgumentError, ConfigError, exit_on_user_error
from dynaseg.run.entry import validated
from helpers import ROOT, compose_config, run_python

BASES = {
    "train": ["experiment=quickstart"],
    "eval": ["ckpt_path=run/last.ckpt"],
    "predict": ["ckpt_path=run/last.ckpt", "inputs=photos"],
}

WRONG = [
    # the issue's five
    ("train", "model.optimizer.lr=-1", "model.optimizer.lr=-1: expected a learning rate > 0"),
    ("train", "seed=abc", "seed='abc': expected an integer (the random seed) or null"),
    (
        "train",
        "data.crop_size=[0,0]",
        "data.crop_size=[0, 0]: expected [h, w] of the training crop: two integers ≥ 1",
    ),
    (
        "train",
        "trainer.max_steps=-5",
        "trainer.max_steps=-5: expected an integer ≥ 1 (optimizer steps), or -1 for no limit",
    ),
    (
        "train",
        "trainer.val_check_interval=-3",
        "trainer.val_check_interval=-3: expected an integer ≥ 1 (optimizer steps), a fraction",
    ),
    # seed
    ("train", "seed=1.5", "seed=1.5: expected an integer"),
    # model: optimizer, schedule, loss, inference
    ("train", "model.optimizer.lr=fast", "model.optimizer.lr='fast': expected a learning rate"),
    ("train", "model.optimizer.weight_decay=-0.1", "model.optimizer.weight_decay=-0.1: expected"),
    ("train", "model.optimizer.momentum=1.5", "model.optimizer.momentum=1.5: expected"),
    ("train", "model.scheduler.min_lr=-1", "model.scheduler.min_lr=-1: expected"),
    ("train", "model.scheduler.power=-2", "model.scheduler.power=-2: expected"),
    ("train", "model.scheduler.name=cosine", "model.scheduler.name='cosine': expected one of"),
    ("train", "model.aux_loss_weight=-1", "model.aux_loss_weight=-1: expected a loss weight ≥ 0"),
    ("train", "model.layer_decay=1.5", "model.layer_decay=1.5: expected a factor in (0, 1]"),
    ("train", "model.lr_mult.decode_head=-10", "model.lr_mult={'decode_head': -10}: expected"),
    ("train", "model.inference.mode=tiles", "model.inference.mode='tiles': expected one of"),
    ("train", "model.inference.scales=[]", "model.inference.scales=[]: expected a non-empty"),
    # data
    ("train", "data.batch_size=0", "data.batch_size=0: expected an integer ≥ 1"),
    ("train", "data.num_workers=two", "data.num_workers='two': expected an integer ≥ 0"),
    ("train", "data.scale=[512]", "data.scale=[512]: expected [long, short]"),
    ("train", "data.ratio_range=[2.0,0.5]", "data.ratio_range=[2.0, 0.5]: expected [low, high]"),
    ("train", "data.cat_max_ratio=0", "data.cat_max_ratio=0: expected a fraction in (0, 1]"),
    ("train", "data.on_bad_sample=ignore", "data.on_bad_sample='ignore': expected one of"),
    ("train", "data.dataset.memory_cache_mb=-1", "data.dataset.memory_cache_mb=-1: expected"),
    ("train", "data.dataset.cache_dir=5", "data.dataset.cache_dir=5: expected a directory path"),
    # trainer
    ("train", "trainer.max_epochs=0", "trainer.max_epochs=0: expected an integer ≥ 1"),
    ("train", "trainer.val_check_interval=1.5", "trainer.val_check_interval=1.5: expected"),
    # a fraction of an epoch, but validation is step-wise (check_val_every_n_epoch: null)
    ("train", "trainer.val_check_interval=0.5", "trainer.val_check_interval=0.5: expected"),
    ("train", "trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0: expected"),
    ("train", "trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: expected"),
    ("train", "trainer.limit_val_batches=-1", "trainer.limit_val_batches=-1: expected"),
    # callbacks, top level, paths
    (
        "train",
        "callbacks.fault_tolerance.every_n_steps=-1",
        "callbacks.fault_tolerance.every_n_steps=-1: expected an integer ≥ 0",
    ),
    (
        "train",
        "callbacks.frozen_feature_cache={directory:cache,max_gb:0}",
        "callbacks.frozen_feature_cache.max_gb=0: expected gigabytes > 0",
    ),
    ("train", "test_checkpoint=first", "test_checkpoint='first': expected one of last, best"),
    ("train", "paths.data_dir=5", "paths.data_dir=5: expected a directory path"),
    ("train", "extras.cpu_memory_reuse=maybe", "extras.cpu_memory_reuse='maybe': expected true"),
    ("eval", "extras.print_config=1", "extras.print_config=1: expected true or false"),
    # src/eval.py
    ("eval", "model.inference.crop_size=[0,512]", "model.inference.crop_size=[0, 512]: expected"),
    ("eval", "model.inference.flip=maybe", "model.inference.flip='maybe': expected true or false"),
    ("eval", "data.val_batch_size=-1", "data.val_batch_size=-1: expected an integer ≥ 1"),
    # src/predict.py
    ("predict", "opacity=2", "opacity=2: expected a weight in [0, 1]"),
    ("predict", "overlay=yes", "overlay='yes': expected true or false"),
    ("predict", "model.inference.stride=[0,0]", "model.inference.stride=[0, 0]: expected"),
    ("predict", "submission.format=5", "submission.format=5: expected a test server's name"),
    ("predict", "ids_file=[a]", "ids_file=['a']: expected a file of image ids"),
]


def with_override(task: str, override: str):  # noqa: ANN201
    """The task's composed config with ``key=value`` set as Hydra parses it on the command line
    (the base is composed once per test process)."""
    cfg = compose_config(task, BASES[task])
    (parsed,) = OverridesParser.create().parse_overrides([override])
    with open_dict(cfg):
        OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=False)
    return cfg


@pytest.mark.parametrize(("task", "override", "message"), WRONG, ids=[w[1] for w in WRONG])
def test_a_wrong_value_is_one_line_naming_the_key(
    task: str, override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = with_override(task, override)
    built = []
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        exit_on_user_error(lambda: validated(built.append)(cfg))
    err = capsys.readouterr().err
    assert exc.value.code == 1 and built == []  # stopped before the task built anything
    (line,) = err.splitlines()
    assert line.startswith(f"error: {message}"), line
    assert "Traceback" not in err


def test_the_issues_cases_and_more_are_covered() -> None:
    groups = {w[1].split("=")[0].split(".")[0] for w in WRONG}
    assert len(WRONG) >= 25
    assert {"model", "data", "trainer", "seed", "paths", "callbacks", "opacity"} <= groups
    assert {w[0] for w in WRONG} == {"train", "eval", "predict"}


def test_a_group_replaced_by_a_value_names_the_group() -> None:
    with pytest.raises(ConfigError, match=r"^model.optimizer=0.1: expected a group of keys"):
        check_values("model", {"optimizer": 0.1})


def test_several_wrong_values_are_one_line_each() -> None:
    with pytest.raises(ConfigError) as err:
        check_values("data", {"batch_size": 0, "num_workers": -1, "crop_size": [64, 64]})
    assert str(err.value).split("\nerror: ") == [
        "data.batch_size=0: expected an integer ≥ 1 (samples per batch)",
        "data.num_workers=-1: expected an integer ≥ 0 (loader worker processes; 0 loads in the "
        "main process)",
    ]


@pytest.mark.parametrize("task", sorted(BASES))
def test_the_defaults_of_every_entry_point_validate(task: str) -> None:
    validate_config(compose_config(task, BASES[task]))


@pytest.mark.parametrize(
    ("task", "overrides"),
    [
        *[("predict", [*BASES["predict"], f"server={s}"]) for s in ("cityscapes", "voc2012")],
        ("train", ["experiment=dmnet_r101_voc_trainval_ft", "stage1_ckpt=stage1/last.ckpt"]),
    ],
    ids=["server-cityscapes", "server-voc2012", "trainval-ft"],
)
def test_the_submission_and_fine_tuning_presets_validate(task: str, overrides: list[str]) -> None:
    """The keys they add (submission.*, ids_file, stage1_ckpt) are of the schema's types."""
    cfg = compose_config(task, overrides)
    validate_config(cfg)
    with open_dict(cfg):
        cfg.ids_file, cfg.stage1_ckpt = 3, 4
    with pytest.raises(ConfigError, match="ids_file=3: expected") as err:
        validate_config(cfg)
    assert "stage1_ckpt=4: expected the first stage's checkpoint file path" in str(err.value)


def test_right_values_of_every_kind_validate() -> None:
    """Unions and nulls: what Lightning, the optimizer and the inference code accept."""
    check_values("trainer", {"val_check_interval": 0.25, "check_val_every_n_epoch": 1})
    check_values("trainer", {"val_check_interval": 1000, "max_steps": -1, "max_epochs": None})
    check_values("trainer", {"val_check_interval": "00:01:00:00", "fast_dev_run": 3})
    check_values("model.inference", {"crop_size": 512, "stride": [341, 341], "mode": "slide"})
    check_values(
        "model.optimizer", {"lr": 1, "betas": [0.9, 0.999], "_target_": "torch.optim.AdamW"}
    )
    check_values("", {"seed": None, "inputs": ["a.jpg", "b.jpg"], "test_variants": {"f": {}}})


def test_docs_list_the_checked_keys() -> None:
    """docs/configs.md's table is the schema's (regenerate: python scripts/config_docs.py)."""
    text = (ROOT / "docs" / "configs.md").read_text()
    block = text.split(DOC_BEGIN)[1].split(DOC_END)[0].strip()
    assert block == schema_markdown()
    keys = [key for key, _ in schema_rows()]
    assert "model.optimizer.lr" in keys and "trainer.val_check_interval" in keys
    assert all(text for _, text in schema_rows())  # every key says what it expects


def test_config_docs_rewrites_a_stale_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """scripts/config_docs.py replaces what lies between the markers and nothing else."""
    doc = tmp_path / "configs.md"
    doc.write_text(f"# Configs\n\n{DOC_BEGIN}\n| key | expected |\n| `old` | x |\n{DOC_END}\nend\n")
    assert config_docs_main(["--doc", str(doc)]) == 0
    assert doc.read_text() == f"# Configs\n\n{DOC_BEGIN}\n{schema_markdown()}\n{DOC_END}\nend\n"
    assert capsys.readouterr().out == f"wrote the checked-values table of {doc}\n"
    doc.write_text("no markers\n")
    with pytest.raises(ConfigError, match="expected the markers"):
        config_docs_main(["--doc", str(doc)])


@pytest.mark.parametrize("command", ["check_dataset", "complexity", "convert_mmseg_checkpoint"])
def test_commands_that_compose_a_config_check_it_the_same_way(command: str) -> None:
    """The scripts that take Hydra overrides stop at a wrong value with the same line, before
    they read a dataset, build a model or open a checkpoint."""
    main = importlib.import_module(f"dynaseg.cli.{command}").main
    files = ["missing.pth", "out.ckpt"] if command == "convert_mmseg_checkpoint" else []
    with pytest.raises(ArgumentError) as err:
        main([*files, "experiment=quickstart", "data.batch_size=0"])
    assert str(err.value) == "data.batch_size=0: expected an integer ≥ 1 (samples per batch)"


def entry(script: str, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return run_python(f"src/{script}", *args, f"hydra.run.dir={tmp}/run", timeout=300)


def test_train_and_eval_entry_points_stop_at_a_wrong_value(tmp_path: Path) -> None:
    """Before any dataset, model or trainer is built (eval: before the checkpoint is opened)."""
    proc = entry("train.py", "experiment=quickstart", "trainer.max_steps=-5", tmp=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: trainer.max_steps=-5: expected an integer ≥ 1 (optimizer steps), or -1 for no "
        "limit (then trainer.max_epochs)\n"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
    proc = entry("eval.py", "ckpt_path=missing.ckpt", "model.inference.scales=[0]", tmp=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: model.inference.scales=[0]: expected a non-empty list of positive factors\n"
    )
