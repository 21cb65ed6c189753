"""The decode-head contract shared by every head (mmsegmentation's ``BaseDecodeHead`` shape)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dynaseg.errors import check_arg


class DecodeHead(nn.Module):
    """A head takes the backbone's whole feature list and returns class logits.

    Subclasses pick their inputs by index (``in_index`` for the main feature) and implement
    :meth:`forward`; the classifier ``dropout → 1×1 conv`` (:meth:`cls_seg`) is shared.

    Args:
        in_channels: channels of *every* backbone feature, in the backbone's order (the
            segmentor passes ``backbone.channels``); the head selects what it uses.
        in_index: index of the main input feature in that list (timm out index: 4 = ``layer4``,
            i.e. the papers' "Stage 5").
        channels: working width of the head.
        num_classes: number of output classes.
        dropout_ratio: dropout before the classifier (2-D, as mmseg).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_index: int,
        channels: int,
        num_classes: int,
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_channels_all = list(in_channels)
        for key, value in (("channels", channels), ("num_classes", num_classes)):
            check_arg(isinstance(value, int) and value >= 1, key, value, "an integer ≥ 1")
        check_arg(0 <= dropout_ratio < 1, "dropout_ratio", dropout_ratio, "a value in [0, 1)")
        self.in_index = self.feature_index("in_index", in_index)
        self.in_channels = self.in_channels_all[in_index]
        self.channels = channels
        self.num_classes = num_classes
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def feature_index(self, key: str, index: int) -> int:
        """Check that ``index`` (the head argument ``key``, e.g. ``context_index``) picks one of
        the backbone's features; every head checks its feature indices through here."""
        n = len(self.in_channels_all)
        # the segmentor puts the head's key path in front (model.net.decode_head.<key>=…)
        check_arg(-n <= index < n, key, index, f"a feature index in 0..{n - 1} (the backbone "
                  f"gives {n} features, channels {self.in_channels_all})")  # fmt: skip
        return index

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        """Classify each pixel: dropout then a 1×1 conv."""
        return self.conv_seg(self.dropout(feat))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
