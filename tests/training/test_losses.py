"""Band-wise resized cross-entropy against the literal upsample-then-cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynaseg.training import losses
from dynaseg.training.losses import resized_cross_entropy


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "low, high", [((8, 8), (64, 64)), ((9, 7), (65, 50)), ((16, 16), (16, 16)), ((5, 6), (3, 4))]
)
def test_resized_cross_entropy_equals_upsample_then_cross_entropy(
    low, high, align_corners, monkeypatch
) -> None:
    monkeypatch.setattr(losses, "BAND_ELEMENTS", 5 * high[1] * 3)  # several bands of 3 rows
    torch.manual_seed(0)
    logits = torch.randn(2, 5, *low, requires_grad=True)
    labels = torch.randint(0, 5, (2, *high))
    labels[0, :2] = 255
    grad = torch.rand(2, *high)
    up = F.interpolate(logits, size=high, mode="bilinear", align_corners=align_corners)
    ref = F.cross_entropy(up, labels, ignore_index=255, reduction="none")
    ours = resized_cross_entropy(logits, labels, 255, align_corners)
    assert (ours - ref).abs().max() <= 1e-5
    assert torch.all(ours[0, :2] == 0)
    ref_grad = torch.autograd.grad(ref, logits, grad)[0]
    our_grad = torch.autograd.grad(ours, logits, grad)[0]
    assert (our_grad - ref_grad).abs().max() <= 1e-5 * max(1.0, ref_grad.abs().max().item())
    assert our_grad.abs().sum() > 0


def test_resized_cross_entropy_rejects_labels_out_of_range() -> None:
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 1, 1] = 7
    with pytest.raises(ValueError, match=r"label values \[7\]"):
        resized_cross_entropy(torch.randn(1, 3, 2, 2), labels)


def test_align_corners_changes_the_loss() -> None:
    """The two conventions give different losses (the True path is not the False one)."""
    torch.manual_seed(0)
    logits, labels = torch.randn(1, 4, 5, 5), torch.randint(0, 4, (1, 33, 33))
    false = resized_cross_entropy(logits, labels, 255, align_corners=False)
    true = resized_cross_entropy(logits, labels, 255, align_corners=True)
    assert (false - true).abs().max() > 1e-3
