"""The one state-dict diff (missing / unexpected / shape) and the checkpoint unwrapping."""

from __future__ import annotations

import pytest
import torch

from dynaseg.errors import CheckpointError
from dynaseg.models.state_dicts import SHOWN, diff_state_dicts, unwrap_state_dict


def test_diff_names_each_category_in_order_and_truncates_once() -> None:
    source = {"a": torch.zeros(2), "extra": torch.zeros(1)}
    source |= {f"u{i}": torch.zeros(1) for i in range(SHOWN + 2)}
    target = {"b": torch.zeros(1), "a": torch.zeros(3), "u0": torch.zeros(1)}
    diff = diff_state_dicts(source, target)
    assert diff.missing == ["b"]
    assert diff.unexpected == ["extra"] + [f"u{i}" for i in range(1, SHOWN + 2)]
    assert diff.shape_mismatch == ["a (2,)→(3,)"]
    assert diff.problems("checkpoint", "model") == [
        "missing from the checkpoint (1): b",
        f"not in the model ({SHOWN + 2}): extra, "
        + ", ".join(f"u{i}" for i in range(1, SHOWN))
        + ", … (2 more)",
        "shape differs, checkpoint→model (1): a (2,)→(3,)",
    ]
    assert not diff_state_dicts(target, target) and diff


def test_unwrap_reads_state_dict_entry_or_bare_dict_without_module_prefix() -> None:
    w = torch.ones(1)
    assert unwrap_state_dict({"state_dict": {"module.x": w, "n": 3}, "meta": 1}) == {"x": w}
    assert unwrap_state_dict({"y": w}) == {"y": w}
    with pytest.raises(CheckpointError, match="^'f.pth' has no 'state_dict' mapping"):
        unwrap_state_dict({"state_dict": [w]}, "'f.pth'")
