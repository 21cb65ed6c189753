"""mmseg's own ImageNet ResNetV1c weights (the initialisation of its model-zoo rows) load into
timm ``resnet*c`` backbones from a local file (issue: paper-era initialisation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynaseg.errors import ConfigError
from dynaseg.models.backbones import TimmBackbone
from dynaseg.models.mmseg_import import STEM_TO_TIMM as TIMM_STEM_NAME
from dynaseg.models.mmseg_import import TIMM_TO_STEM


def mmseg_v1c_file(body: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """``body``'s weights written as mmseg's ``resnet50_v1c`` file is: ``stem.N`` deep stem, the
    classifier ``fc``, inside ``state_dict`` with ``meta``."""
    state = {}
    for key, value in body.state_dict().items():
        module, _, leaf = key.rpartition(".")
        if module in TIMM_TO_STEM:
            key = f"stem.{TIMM_TO_STEM[module]}.{leaf}"
        state[key] = torch.randn_like(value) if value.is_floating_point() else value + 1
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    torch.save({"meta": {"epoch": 100}, "state_dict": state}, path)
    return state


def test_mmseg_resnet50_v1c_file_loads_into_timm_resnet50c(tmp_path: Path) -> None:
    path = tmp_path / "resnet50_v1c-2cccc1ad.pth"
    written = mmseg_v1c_file(TimmBackbone("resnet50c").body, path)
    loaded = TimmBackbone("resnet50c", checkpoint_path=str(path)).body.state_dict()
    assert len(loaded) == len(written) - 2  # everything but the classifier
    for key, value in loaded.items():
        module, _, leaf = key.rpartition(".")
        source = f"stem.{TIMM_TO_STEM[module]}.{leaf}" if module in TIMM_TO_STEM else key
        assert torch.equal(value, written[source]), key


def test_mmseg_weights_of_another_depth_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "resnet50_v1c.pth"
    mmseg_v1c_file(TimmBackbone("resnet50c").body, path)
    with pytest.raises(ConfigError, match="checkpoint_path=.*resnet101_v1c for resnet101c"):
        TimmBackbone("resnet101c", checkpoint_path=str(path))


def test_mmseg_file_without_bn_step_counters_loads_and_names_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mmcv's resnet*_v1c files may lack BatchNorm's num_batches_tracked (older torch saves):
    the loader keeps those at 0, says which, and still requires every other key."""
    path = tmp_path / "resnet50_v1c.pth"
    body = TimmBackbone("resnet50c").body
    state = mmseg_v1c_file(body, path)
    counters = sorted(k for k in state if k.endswith("num_batches_tracked"))
    assert len(counters) == 55  # every BatchNorm of ResNet-50-D: stem 3, 16 blocks x 3, 4 shortcuts
    trimmed = {k: v for k, v in state.items() if k not in counters}
    torch.save({"state_dict": trimmed}, path)
    with caplog.at_level("INFO", logger="dynaseg.models.backbones"):
        backbone = TimmBackbone("resnet50c", checkpoint_path=str(path))
    timm_names = sorted(
        f"{TIMM_STEM_NAME[k.split('.')[1]]}.num_batches_tracked" if k.startswith("stem.") else k
        for k in counters
    )
    assert sorted(backbone.filled_keys) == timm_names
    assert "55 BatchNorm num_batches_tracked counter(s) not in the file, kept at 0" in caplog.text
    loaded = backbone.body.state_dict()
    assert all(int(loaded[k]) == 0 for k in timm_names)
    key = "layer1.0.conv1.weight"
    assert torch.equal(loaded[key], trimmed[key])
    del trimmed["layer1.0.bn1.running_mean"]  # any other key is still required
    torch.save({"state_dict": trimmed}, path)
    with pytest.raises(
        ConfigError, match=r"missing from the file \(1\): layer1\.0\.bn1\.running_mean\)"
    ):
        TimmBackbone("resnet50c", checkpoint_path=str(path))
