"""mmseg's own ImageNet ResNetV1c weights (the initialisation of its model-zoo rows) load into
timm ``resnet*c`` backbones from a local file (issue: paper-era initialisation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynaseg.errors import ConfigError
from dynaseg.models.backbones import TimmBackbone
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
