"""scripts/convert_mmseg_checkpoint.py (dynaseg.cli.convert_mmseg_checkpoint): mmseg DMNet layout
→ our checkpoint, equal logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynaseg.cli.convert_mmseg_checkpoint import main as convert_main
from dynaseg.models.mmseg_import import (
    CheckpointConversionError,
    convert_mmseg_state_dict,
    mmseg_to_dynaseg_key,
    to_mmseg_state_dict,
)
from dynaseg.run.recipes import build_model
from dynaseg.training.module import SegmentationModule
from helpers import compose_config, run_python

# A small DMNet with mmseg's ResNetV1c layout: timm resnet50c (deep stem, bottlenecks), one block
# per stage and narrow channels, so the stem.* and downsample keys are all exercised.
SMALL_DMNET = [
    "model=dmnet",
    "model.net.backbone.name=resnet50c",
    "+model.net.backbone.layers=[1,1,1,1]",
    "+model.net.backbone.channels=[8,16,32,32]",
    "+model.net.backbone.stem_width=8",
    "model.net.decode_head.channels=16",
    "model.net.auxiliary_head.channels=8",
]


def small_module(seed: int) -> SegmentationModule:
    torch.manual_seed(seed)
    module = build_model(compose_config("train", SMALL_DMNET))
    with torch.no_grad():  # non-trivial BN statistics, so a misplaced BN changes the logits
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return module.eval()


def test_stem_keys_follow_the_documented_map() -> None:
    assert mmseg_to_dynaseg_key("backbone.stem.0.weight") == "net.backbone.body.conv1.0.weight"
    assert mmseg_to_dynaseg_key("backbone.stem.4.running_var") == (
        "net.backbone.body.conv1.4.running_var"
    )
    assert mmseg_to_dynaseg_key("backbone.stem.7.bias") == "net.backbone.body.bn1.bias"
    assert mmseg_to_dynaseg_key("backbone.stem.2.weight") is None  # a ReLU has no weights
    assert mmseg_to_dynaseg_key("backbone.layer3.5.downsample.1.weight") == (
        "net.backbone.body.layer3.5.downsample.1.weight"
    )
    assert mmseg_to_dynaseg_key("auxiliary_head.convs.0.conv.weight") == (
        "net.auxiliary_head.0.convs.0.conv.weight"
    )
    assert mmseg_to_dynaseg_key("decode_head.dcm_modules.3.norm.weight") == (
        "net.decode_head.dcm_modules.3.norm.weight"
    )


def test_round_trip_through_mmseg_layout_gives_equal_logits(tmp_path: Path) -> None:
    source = small_module(seed=0)
    mmseg_state = to_mmseg_state_dict(source.state_dict())
    assert {
        "backbone.stem.0.weight",
        "backbone.stem.7.running_mean",
        "decode_head.dcm_modules.0.filter_gen_conv.weight",
        "auxiliary_head.convs.0.conv.weight",
    } <= set(mmseg_state)
    assert not any(k.startswith("net.") or "conv1.0" in k for k in mmseg_state)
    pth = tmp_path / "dmnet_mmseg.pth"
    torch.save({"meta": {"CLASSES": ("a", "b")}, "state_dict": mmseg_state}, pth)

    out = tmp_path / "converted.ckpt"
    assert convert_main([str(pth), str(out), *SMALL_DMNET]) == 0
    converted = SegmentationModule.load_from_checkpoint(out).eval()
    fresh = small_module(seed=1)  # different weights: the conversion must overwrite all of them
    images = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        assert not torch.equal(fresh(images), source(images))
        assert torch.equal(converted(images), source(images))


def test_conversion_names_unmapped_missing_and_mismatched_keys() -> None:
    module = small_module(seed=0)
    mmseg_state = to_mmseg_state_dict(module.state_dict())
    del mmseg_state["decode_head.bottleneck.conv.weight"]
    mmseg_state["decode_head.conv_seg.weight"] = torch.zeros(19, 16, 1, 1)
    mmseg_state["neck.fpn.weight"] = torch.zeros(1)
    mmseg_state["decode_head.extra.weight"] = torch.zeros(1)
    del mmseg_state["backbone.stem.1.num_batches_tracked"]  # tolerated: filled with 0
    with pytest.raises(CheckpointConversionError) as err:
        convert_mmseg_state_dict(mmseg_state, module.state_dict())
    text = str(err.value)
    assert "neck.fpn.weight" in text
    assert "decode_head.extra.weight -> net.decode_head.extra.weight" in text
    assert "net.decode_head.conv_seg.weight (19, 16, 1, 1)→(10, 16, 1, 1)" in text
    assert "net.decode_head.bottleneck.conv.weight" in text
    assert "num_batches_tracked" not in text


@pytest.mark.slow  # a script subprocess; fast tier: the converter's in-process checks above
def test_script_reports_a_bad_file_without_traceback(tmp_path: Path) -> None:
    script = "scripts/convert_mmseg_checkpoint.py"
    proc = run_python(script, str(tmp_path / "nope.pth"), str(tmp_path / "x.ckpt"), timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == f"error: mmseg checkpoint '{tmp_path / 'nope.pth'}' does not exist\n"
