"""State dicts: unwrapping one from a checkpoint file's contents and comparing one with a model's.

The one way to say how two state dicts differ (missing, unexpected and shape-mismatched keys,
quoted with one truncation length): used when resuming or evaluating a checkpoint
(:func:`dynaseg.run.checkpoints.check_same_model`), when starting from another run's weights
(:mod:`dynaseg.training.weights`) and when converting mmseg weights
(:mod:`dynaseg.models.mmseg_import`, :mod:`dynaseg.models.backbones`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from dynaseg.errors import CheckpointError

SHOWN = 8  # keys quoted per category in a message


def listing(keys: Sequence[str], limit: int = SHOWN) -> str:
    """The first ``limit`` keys, comma-separated, and how many more there are."""
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys) - limit} more)" if len(keys) > limit else "")


def unwrap_state_dict(
    checkpoint: Mapping[str, object], what: str = "the checkpoint"
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's contents (its ``state_dict`` entry, or a bare state dict),
    without a DataParallel/DDP ``module.`` prefix; entries that are not tensors are dropped.
    ``what`` names the file in the error raised when there is no mapping to read."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what} has no 'state_dict' mapping of tensors")
    return {
        key.removeprefix("module."): value
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


@dataclass(frozen=True)
class StateDictDiff:
    """How a source state dict differs from the target (a model's ``state_dict()``).

    ``missing``: target keys the source lacks (target order); ``unexpected``: source keys the
    target lacks (source order); ``shape_mismatch``: ``"key (source shape)→(target shape)"`` for
    keys in both with different shapes (target order).
    """

    missing: list[str]
    unexpected: list[str]
    shape_mismatch: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape_mismatch)

    def problems(self, source: str, target: str) -> list[str]:
        """One ``"<what> (<count>): <keys>"`` phrase per non-empty category, naming the two sides
        (e.g. ``source="checkpoint", target="network"``)."""
        return [
            f"{name} ({len(keys)}): {listing(keys)}"
            for name, keys in (
                (f"missing from the {source}", self.missing),
                (f"not in the {target}", self.unexpected),
                (f"shape differs, {source}→{target}", self.shape_mismatch),
            )
            if keys
        ]


def diff_state_dicts(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> StateDictDiff:
    """The keys of ``target`` that ``source`` lacks, the keys of ``source`` that ``target`` lacks
    and the shared keys whose shapes differ."""
    return StateDictDiff(
        missing=[k for k in target if k not in source],
        unexpected=[k for k in source if k not in target],
        shape_mismatch=[
            f"{k} {tuple(source[k].shape)}→{tuple(target[k].shape)}"
            for k in target
            if k in source and tuple(source[k].shape) != tuple(target[k].shape)
        ],
    )
