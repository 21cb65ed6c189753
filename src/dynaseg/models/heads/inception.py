"""Inception-style multi-kernel head: DMNet's "Inception" baseline (He et al., ICCV 2019).

DMNet Fig. 1(a), Table 1 ("Regular conv" row) and Table 3: the context-aware filters of every
DCM are replaced by *fixed* learned regular ``k×k`` convolutions (``k ∈ {1, 3, 5, 7}``), keeping
the rest of DMNet (1×1 reduction, BN-ReLU, concat with the input, 3×3 bottleneck) identical, so the
comparison isolates the filters. This is :class:`~dynaseg.models.heads.dmnet.DMHead` with
``filter_type="regular"``; the class exists so configs and tables can name the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

from dynaseg.models.heads.dmnet import DMHead


class InceptionHead(DMHead):
    """Parallel fixed ``k×k`` regular convs (``filter_sizes``) in DMNet's head structure.

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see
            :class:`~dynaseg.models.heads.base.DecodeHead`.
        filter_sizes: kernel size of each branch (paper: ``(1, 3, 5, 7)``).
        depthwise: use depthwise instead of dense fixed filters (Table 1 "Depthwise conv" row).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        filter_sizes: Sequence[int] = (1, 3, 5, 7),
        depthwise: bool = False,
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__(
            in_channels,
            num_classes,
            in_index=in_index,
            channels=channels,
            filter_sizes=filter_sizes,
            dropout_ratio=dropout_ratio,
            filter_type="depthwise" if depthwise else "regular",
        )
