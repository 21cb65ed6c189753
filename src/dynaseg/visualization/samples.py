"""Running a model on dataset images for figures: predictions and captured internals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from dynaseg.metrics import predicted_labels

if TYPE_CHECKING:
    from dynaseg.data.base import SegmentationDataset


# ---------------------------------------------------------------------------- running a model
@dataclass
class Sample:
    """One dataset image run through a model: raw RGB image, labels, prediction, internals."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8, as loaded (before normalisation)
    label: np.ndarray  # (H, W) int64, ignore_index where unlabelled
    prediction: np.ndarray  # (H, W) int64
    internals: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


@torch.no_grad()
def predict_samples(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    indices: Sequence[int],
    capture: bool = False,
) -> list[Sample]:
    """Run ``model`` (eval mode, whole image, one image at a time) on ``dataset[indices]``.

    The prediction is at the label's size (the logits are resized to it, as in evaluation).
    With ``capture`` each sample also holds the heads' adaptive internals
    (:func:`~dynaseg.models.heads.base.capture_internals`, on the CPU, batch dimension dropped).
    """
    from torch.utils.data import default_collate

    from dynaseg.models.heads.base import capture_internals

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    net = getattr(model, "net", model)
    samples = []
    try:
        for i in indices:
            item = dataset[int(i)]
            raw_image, _ = dataset.load(int(i))
            label = item["label"]
            images = item["image"].unsqueeze(0).to(device)
            # the per-image inputs a head reads (the zoom oracle's zoom), batched as a loader would
            scene = {
                k: default_collate([item[k]]).to(device) for k in getattr(net, "scene_inputs", ())
            }
            extra = {"scene": scene} if scene else {}
            internals: dict[str, dict[str, torch.Tensor]] = {}
            if capture:
                with capture_internals(net) as recorded:
                    logits = model(images, tuple(label.shape[-2:]), **extra)
                internals = {
                    head: {k: v[0].cpu() for k, v in values.items()}
                    for head, values in recorded.items()
                }
            else:
                logits = model(images, tuple(label.shape[-2:]), **extra)
            samples.append(
                Sample(
                    name=item.get("name", str(i)),
                    image=raw_image,
                    label=label.numpy().astype(np.int64),
                    prediction=predicted_labels(logits)[0].cpu().numpy().astype(np.int64),
                    internals=internals,
                )
            )
    finally:
        model.train(was_training)
    return samples


def evenly_spaced(n: int, total: int) -> list[int]:
    """``n`` indices spread over ``range(total)`` (first and last included)."""
    if total <= 0 or n <= 0:
        return []
    if n >= total:
        return list(range(total))
    return sorted({round(i * (total - 1) / max(n - 1, 1)) for i in range(n)})
