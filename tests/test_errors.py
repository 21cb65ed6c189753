"""One error style: every bad input ends as one ``error: …`` line naming the key or file, exit 1.

Most cases run the entry points' own path in-process (``exit_on_user_error(lambda: train(cfg))``
is all ``src/train.py`` does); the Hydra wiring is pinned by a few subprocess runs. Each test here
is a row of docs/reliability.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from dynaseg.errors import ConfigError, NonFiniteLossError, exit_on_user_error, user_error_in
from dynaseg.run.recipes import build_model, evaluate, train
from fixtures_real import write_ade20k
from helpers import ROOT, TINY, compose_config, run_python

QUIET = [
    "extras.print_config=false",
    "callbacks.rich_progress_bar=null",
    "~logger",
    "callbacks.lr_monitor=null",
]


def user_facing(fn: Callable[[], Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of ``fn`` run the way the entry points run it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        exit_on_user_error(fn)
    return int(exc.value.code), capsys.readouterr().err


def cfg_for(tmp: Path, *overrides: str, name: str = "train") -> Any:
    base = [*TINY, *QUIET] if name == "train" else [o for o in TINY if o.startswith("data.")]
    return compose_config(name, [*base, *overrides], output_dir=tmp)


def entry_point(tmp: Path, *args: str, env: dict[str, str] | None = None):
    import os

    return run_python(
        "src/train.py", *args, f"hydra.run.dir={tmp}/run", env={**os.environ, **(env or {})}
    )


# ---------------------------------------------------------------- config values
@pytest.mark.slow  # a training subprocess; fast tier: the in-process head argument checks
def test_head_channels_zero_through_the_entry_point(tmp_path: Path) -> None:
    """Hydra wraps the head's error in InstantiationException; the user sees the head's line."""
    proc = entry_point(tmp_path, *TINY, *QUIET, "model.net.decode_head.channels=0")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: model.net.decode_head.channels=0: expected an integer ≥ 1 (DMHead)"
    )
    assert "Traceback" not in proc.stderr and "InstantiationException" not in proc.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.net.decode_head.channels=-5",
            "model.net.decode_head.channels=-5: expected an integer ≥ 1 (DMHead)",
        ),
        (
            "model.net.decode_head.filter_sizes=[0,3]",
            "model.net.decode_head.filter_sizes=[0, 3]: expected kernel sizes ≥ 1 (DMHead)",
        ),
        (
            "model.net.decode_head.dropout_ratio=1.5",
            "model.net.decode_head.dropout_ratio=1.5: expected a value in [0, 1) (DMHead)",
        ),
        (
            "model.net.auxiliary_head.channels=0",
            "model.net.auxiliary_head.channels=0: expected an integer ≥ 1 (FCNHead)",
        ),
        (
            "model.net.auxiliary_head.in_index=7",
            "model.net.auxiliary_head.in_index=7: expected a feature index in 0..4 (the backbone "
            "gives 5 features, channels [64, 32, 64, 128, 256]) (FCNHead)",
        ),
        (
            "model.net.decode_head.context_index=9",
            "model.net.decode_head.context_index=9: expected a feature index in 0..4 (the backbone "
            "gives 5 features, channels [64, 32, 64, 128, 256]) (DMHead)",
        ),
        (
            "model.net.backbone.output_stride=4",
            "model.net.backbone.output_stride=4: expected 8, 16, 32 or null (the family's native "
            "stride)",
        ),
        (
            "model.net.decode_head.in_index=penultimate",
            "model.net.decode_head.in_index='penultimate': expected a feature index or a stage "
            "role (context, auxiliary, low_level) (DMHead)",
        ),
        (
            "model.net.backbone.name=resnet5O",
            "model.net.backbone.name='resnet5O': not a timm model; expected a name from "
            "timm.list_models()",
        ),
        ("data.batch_size=0", "data.batch_size=0: expected an integer ≥ 1 (samples per batch)"),
        ("data.batch_size=-2", "data.batch_size=-2: expected an integer ≥ 1 (samples per batch)"),
        (
            "data.batch_size=eight",
            "data.batch_size='eight': expected an integer ≥ 1 (samples per batch)",
        ),
        (
            "data.num_workers=-1",
            "data.num_workers=-1: expected an integer ≥ 0 (loader worker "
            "processes; 0 loads in the main process)",
        ),
        # checked for every dataset, not only by the pre-flight check of on-disk ones
        ("data.on_bad_sample=bogus", "data.on_bad_sample='bogus': expected one of error, skip"),
    ],
)
def test_config_values_are_checked_at_construction(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Model and data settings fail where the entry points build them (Hydra's wrapper
    unwrapped), before any training."""
    cfg = cfg_for(tmp_path, override)
    code, err = user_facing(lambda: (instantiate(cfg.data), build_model(cfg)), capsys)
    assert code == 1 and err.startswith(f"error: {message}"), err
    assert len(err.strip().splitlines()) == 1


def test_an_output_stride_the_family_cannot_give_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Swin cannot be dilated: OS8 demanded with require_output_stride is one line naming the key
    and the families that can (without it: a warning and the native stride, test_backbones)."""
    cfg = cfg_for(
        tmp_path,
        "model/backbone=swin_tiny",
        "model.net.backbone.output_stride=8",
        "model.net.backbone.require_output_stride=true",
        "+model.net.backbone.embed_dim=8",
        "+model.net.backbone.depths=[1,1,1,1]",
        "+model.net.backbone.num_heads=[1,1,1,1]",
    )
    code, err = user_facing(lambda: build_model(cfg), capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "error: model.net.backbone.output_stride=8: 'swin_tiny_patch4_window7_224' "
        "(SwinTransformer) cannot be dilated (native output stride 32); families that can: "
        "ResNet/"
    ), err
    assert "ConvNeXt" in err
    assert err.strip().endswith("set model.net.backbone.output_stride=null for the native stride")


def test_sac_multiple_names_the_families_it_supports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = cfg_for(
        tmp_path,
        "model=sac_multiple",
        "model/backbone=convnext_cpu",
        "model.net.backbone.dims=[8,8,16,16]",
    )
    code, err = user_facing(lambda: build_model(cfg), capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "error: model=sac_multiple: backbone 'convnext_atto' has no 'layer3'/'layer4' stages; "
        "SAC-multiple supports the timm ResNet family"
    ), err


def test_full_traceback_on_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    cfg = cfg_for(tmp_path, "model.net.decode_head.channels=0")
    with pytest.raises(Exception) as exc:  # Hydra's wrapper, re-raised as is
        exit_on_user_error(lambda: build_model(cfg))
    assert type(exc.value).__name__ == "InstantiationException"
    assert isinstance(user_error_in(exc.value), ConfigError)


def test_unknown_config_names_are_hydras_one_message(tmp_path: Path) -> None:
    proc = entry_point(tmp_path, "model=dmnetx")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Could not find 'model/dmnetx'" in proc.stderr and "\tdmnet\n" in proc.stderr
    proc = entry_point(tmp_path, "trainer.max_stepz=3")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Could not override 'trainer.max_stepz'" in proc.stderr


def test_pretrained_backbone_offline_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No route to the Hub and nothing cached: the message comes after one refused connection,
    not after huggingface_hub's minute of retries (nothing here reaches the network)."""
    import socket
    import time

    from huggingface_hub import constants

    from dynaseg.models.backbones import TimmBackbone

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # a shell without HF_HUB_OFFLINE
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    tried = []

    def no_route(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
        tried.append(address)
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_route)
    start = time.monotonic()
    code, err = user_facing(lambda: TimmBackbone("resnet18", pretrained=True), capsys)
    assert time.monotonic() - start < 10
    assert tried == [("huggingface.co", 443)]
    assert code == 1 and err.strip() == (
        "error: model.net.backbone.pretrained=true: could not load ImageNet weights for backbone "
        "'resnet18': the Hugging Face Hub (https://huggingface.co) cannot be reached and they are "
        "not in the local cache; expected network access, a local weight file "
        "(model.net.backbone.checkpoint_path=/path/to/weights) or "
        "model.net.backbone.pretrained=false to train from scratch"
    )
    assert constants.HF_HUB_OFFLINE is False  # offline only while loading


# ---------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A real 2-step training run (module-scoped: several tests read its checkpoint); the
    validation interval is longer than the run."""
    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = cfg_for(tmp, "trainer.max_steps=2", "trainer.val_check_interval=50", "test=false")
    return tmp / "checkpoints" / "last.ckpt", train(cfg)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_run: tuple[Path, dict[str, Any]]) -> Path:
    return tiny_run[0]


def test_max_steps_below_the_validation_interval_still_validates_the_final_weights(
    tiny_run: tuple[Path, dict[str, Any]],
) -> None:
    """As mmseg's iteration loop: the last step is validated whatever the interval, so the best
    checkpoint (what the test stage evaluates) is a validated one, not the unvalidated last
    weights."""
    last, results = tiny_run
    assert results["global_step"] == 2 and 0 <= results["val"]["mIoU"] <= 1
    assert Path(results["best_checkpoint"]).name.startswith("step000002-")
    assert torch.load(results["best_checkpoint"], weights_only=True)["global_step"] == 2


def bad_checkpoints(tmp: Path, good: Path) -> dict[str, tuple[Path, str]]:
    garbage = tmp / "garbage.ckpt"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    truncated = tmp / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:3000])
    weights = tmp / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    return {
        "missing": (
            tmp / "nope.ckpt",
            f"ckpt_path='{tmp / 'nope.ckpt'}' does not exist (expected a .ckpt file)",
        ),
        "directory": (
            good.parent,
            f"ckpt_path='{good.parent}' is a directory; expected a .ckpt file; it holds last.ckpt",
        ),
        "garbage": (
            garbage,
            f"ckpt_path='{garbage}' is not a checkpoint (5000 bytes, not a "
            "torch.save zip archive; a truncated copy?)",
        ),
        "truncated": (truncated, f"ckpt_path='{truncated}' is not a checkpoint (3000 bytes"),
        "state_dict": (
            weights,
            f"ckpt_path='{weights}' is a torch file (dict with "
            "['conv.weight']) but not a Lightning checkpoint",
        ),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "garbage", "truncated", "state_dict"])
def test_bad_checkpoint_in_training_and_eval(
    case: str, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, message = bad_checkpoints(tmp_path, tiny_checkpoint)[case]
    for name, recipe in (("train", train), ("eval", evaluate)):
        cfg = cfg_for(tmp_path / name, f"ckpt_path={path}", name=name)
        code, err = user_facing(lambda cfg=cfg, recipe=recipe: recipe(cfg), capsys)
        assert code == 1 and err.startswith(f"error: {message}"), (name, err)
        assert len(err.strip().splitlines()) == 1


def test_checkpoint_of_another_model(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = cfg_for(
        tmp_path, f"ckpt_path={tiny_checkpoint}", "model=fcn", "model/backbone=resnet_tiny"
    )
    code, err = user_facing(lambda: train(cfg), capsys)
    assert code == 1, err
    assert err.startswith(f"error: ckpt_path='{tiny_checkpoint}' holds another model")
    assert "'decode_head': 'DMHead'" in err and "'decode_head': 'FCNHead'" in err
    assert "expected a checkpoint of the same model=… and head settings" in err


def test_resume_with_other_max_steps_says_the_schedule_changes(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = cfg_for(
        tmp_path,
        f"ckpt_path={tiny_checkpoint}",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "test=false",
    )
    with pytest.warns(UserWarning) as caught:
        results = train(cfg)
    assert results["global_step"] == 4
    (text,) = [str(w.message) for w in caught if "poly schedule" in str(w.message)]
    assert text.startswith(
        "resuming at step 2 with trainer.max_steps=4 but the checkpoint was trained for "
        "max_steps=2: the poly schedule is recomputed over 4 steps; learning rate "
    )


# ---------------------------------------------------------------- numerical
def test_nan_loss_names_the_step_and_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = cfg_for(
        tmp_path,
        "model.optimizer.lr=1e12",
        "trainer.max_steps=30",
        "trainer.val_check_interval=30",
        "callbacks.fault_tolerance.every_n_steps=1",
    )
    code, err = user_facing(lambda: train(cfg), capsys)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("error: training loss is nan at step ") or line.startswith(
        "error: training loss is inf at step "
    ), line
    step = int(line.split(" at step ")[1].split()[0])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert line.endswith(
        f"expected a finite loss: lower model.optimizer.lr or check the data; "
        f"last good checkpoint: {last}"
    )
    kept = torch.load(last, weights_only=True)
    assert kept["global_step"] == step  # written after the last finite step
    assert all(
        torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point()
    )
    assert isinstance(NonFiniteLossError("x"), FloatingPointError)


# ---------------------------------------------------------------- data
@pytest.mark.slow  # training subprocesses; fast tier: tests/data/test_preflight.py in-process
def test_bad_files_found_before_training_or_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_ade20k(tmp_path / "data", n_train=8, n_val=2)["root"]
    images, labels = root / "images" / "training", root / "annotations" / "training"
    jpg = images / "ADE_train_00000002.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])  # truncated to half
    Image.fromarray(np.zeros((36, 48, 4), np.uint8), "RGBA").save(images / "ADE_extra.png")
    Image.fromarray(np.full((36, 48), 900, np.uint16)).save(
        images / "ADE_train_00000003.jpg", "PNG"
    )
    (labels / "ADE_train_00000004.png").unlink()  # missing label
    lab = np.asarray(Image.open(labels / "ADE_train_00000005.png")).copy()
    lab[5, 5] = 201
    Image.fromarray(lab).save(labels / "ADE_train_00000005.png")  # out-of-range label
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(labels / "ADE_train_00000006.png")  # size
    val_labels = root / "annotations" / "validation"
    lab = np.asarray(Image.open(val_labels / "ADE_val_00000002.png")).copy()
    lab[0, 0] = 222  # found before training too, not at the first validation
    Image.fromarray(lab).save(val_labels / "ADE_val_00000002.png")
    data = [
        "data=ade20k",
        f"paths.data_dir={tmp_path / 'data'}",
        "model/backbone=resnet_tiny",
        "data.batch_size=2",
        "data.val_batch_size=1",
        "data.num_workers=0",
        "data.crop_size=[32,32]",
        "data.scale=[64,48]",
        "data.test_scale=[64,48]",
        f"data.preflight_cache_dir={tmp_path / 'cache'}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "extras.print_config=false",
        "trainer=cpu",
        "callbacks.rich_progress_bar=null",
        "~logger",
        "callbacks.lr_monitor=null",
    ]
    cfg = compose_config("train", data, output_dir=tmp_path / "fail")
    code, err = user_facing(lambda: train(cfg), capsys)
    assert code == 1 and "Traceback" not in err
    err = err[err.index("error: ") :]  # after the check's progress bar
    assert err.startswith(
        f"error: ADE20K split 'train' under {root}: 6 bad sample file(s) found before training:"
    )
    for text in (
        f"{images / 'ADE_extra.png'} is not a .jpg image",
        f"image file {jpg} is truncated",
        f"image file {images / 'ADE_train_00000003.jpg'} is a I;16 PNG image; expected "
        "8-bit RGB or greyscale",
        f"{images / 'ADE_train_00000004.jpg'} has no label",
        f"label file {labels / 'ADE_train_00000005.png'} has raw value(s) 201",
        f"label file {labels / 'ADE_train_00000006.png'} is 12×10 (w×h)",
    ):
        assert text in err, text
    assert not (tmp_path / "fail" / "checkpoints").exists()  # failed before any training

    cfg = compose_config(
        "train", [*data, "data.on_bad_sample=skip", "test=false"], output_dir=tmp_path / "skip"
    )
    results = train(cfg)
    metrics = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    assert results["global_step"] == metrics["global_step"] == 2
    assert metrics["bad_samples"]["train"]["count"] == 6
    assert metrics["bad_samples"]["val"]["count"] == 1
    assert (
        "ADE_val_00000002.png has raw value(s) 222" in metrics["bad_samples"]["val"]["problems"][0]
    )


# ---------------------------------------------------------------- output locations
@pytest.mark.parametrize(
    ("script", "override", "key"),
    [
        ("train.py", "paths.output_dir=/proc/x", "paths.output_dir"),
        ("eval.py", "hydra.run.dir=/proc/x", "hydra.run.dir"),
        ("train.py", "paths.log_dir=/proc/x", "paths.log_dir"),
        ("predict.py", "output_dir=/proc/x", "output_dir"),
    ],
)
def test_unusable_output_location_names_the_key(script: str, override: str, key: str) -> None:
    """Hydra creates the run directory before the task runs; the check (a Hydra callback of
    ``conf/hydra/default.yaml``) comes first, so no FileNotFoundError traceback from Hydra."""
    args = {
        "train.py": [],
        "eval.py": ["ckpt_path=nope"],
        "predict.py": ["ckpt_path=nope", "inputs=x"],
    }
    proc = run_python(f"src/{script}", *args[script], override, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: {key}='/proc/x': cannot create this directory (No such file or directory); "
        "expected a writable directory path\n"
    )


def test_a_config_error_is_reported_before_torch_is_imported() -> None:
    """The checks that run before the task (``dynaseg.run.entry``, the Hydra callbacks) import
    neither torch nor the table renderer, so a mistyped path or value is reported in well under
    a second instead of after the 5 s of importing torch, Lightning and scipy."""
    code = (
        "import sys, dynaseg.run.entry, dynaseg.run.hydra_callbacks, dynaseg.config_schema; "
        "print(sorted(m for m in ('torch', 'lightning', 'scipy') if m in sys.modules))"
    )
    proc = run_python("-c", code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_missing_checkpoint_is_reported_before_torch_is_imported(tmp_path: Path) -> None:
    """``ckpt_path`` is checked with the config (dynaseg.run.entry.validated), before the task
    imports the model stack: ``src/eval.py ckpt_path=<typo>`` answers in well under a second."""
    missing = tmp_path / "missing.ckpt"
    code = (
        "import sys; from omegaconf import OmegaConf; "
        "from dynaseg.run.entry import validated\n"
        "task = validated(lambda cfg: print('the task ran'))\n"
        f"try: task(OmegaConf.create({{'ckpt_path': {str(missing)!r}}}))\n"
        "except Exception as err: print(type(err).__name__, err)\n"
        "print(sorted(m for m in ('torch', 'lightning', 'scipy') if m in sys.modules))"
    )
    proc = run_python("-c", code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"CheckpointNotFoundError ckpt_path='{missing}' does not exist (expected a .ckpt file)",
        "[]",
    ]


def test_unusable_sweep_directory_names_the_key() -> None:
    proc = run_python(
        "src/train.py", "-m", "seed=1,2", "hydra.sweep.dir=/proc/x/sweep", timeout=300
    )
    assert proc.returncode == 1
    assert proc.stderr.endswith(
        "error: hydra.sweep.dir='/proc/x/sweep': cannot create this directory (No such file or "
        "directory); expected a writable directory path\n"
    )
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- scripts
@pytest.mark.slow  # a script subprocess; fast: test_bad_checkpoint_in_training_and_eval
def test_export_onnx_on_a_garbage_checkpoint_names_the_file(tmp_path: Path) -> None:
    """The checkpoint layer checks the file first: no UnpicklingError advising the unsafe
    ``weights_only=False``."""
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x80\x04not a checkpoint" * 100)
    proc = run_python("scripts/export_onnx.py", str(garbage), str(tmp_path / "m.onnx"), timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: checkpoint='{garbage}' is not a checkpoint (1800 bytes, not a torch.save zip "
        "archive; a truncated copy?); expected a .ckpt file written by src/train.py\n"
    )
    assert not (tmp_path / "m.onnx").exists()


def test_no_message_recommends_unsafe_loading() -> None:
    """No error text of the package or scripts advises ``weights_only=False``."""
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    advice = re.compile(r"""["'][^"'\n]*weights_only=False""")  # inside a string: a message
    offenders = [str(p) for p in sources if advice.search(p.read_text())]
    assert offenders == []
