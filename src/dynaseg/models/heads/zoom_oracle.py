"""A head told each scene's zoom: the positive control for scale of the CPU miniature.

Not from a segmentation paper. docs/ablations.md ("Evidence round 2: protocol") asks whether any
head can use the per-scene zoom of ``data=synthetic_scales`` (the scale-decided bird/balloon pair
is decided by size in *scene* units, so a head that knows the zoom can decide it): a head given
the zoom as an input (the *oracle*) against the same head with the zoom replaced by a constant
(its zoom-blind *twin*). The zoom enters by feature-wise linear modulation (FiLM: Perez, Strub,
de Vries, Dumoulin, Courville, "FiLM: Visual Reasoning with a General Conditioning Layer",
AAAI 2018, arXiv:1709.07871, Eq. 1–2: ``FiLM(h) = γ ⊙ h + β`` with ``γ, β`` functions of the
conditioning input), here ``h · (1 + γ(u)) + β(u)`` with ``u = log zoom``.

The zoom reaches the head through the batch: the dataset puts each scene's ``zoom`` in its sample
(:class:`~dynaseg.data.datasets.synthetic_scales.SyntheticScaleScenes`), the
:class:`~dynaseg.training.module.SegmentationModule` hands the batch entries a head names in
``scene_inputs`` to the :class:`~dynaseg.models.segmentor.Segmentor`, which passes them to that
head only. It is the zoom the scene was *generated* at: a random rescale in the training pipeline
(off in the miniature, ``ratio_range: [1, 1]``) is not included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dynaseg.errors import check_arg
from dynaseg.models.heads.base import DecodeHead, record_internal
from dynaseg.models.layers import ConvNormAct

ZOOM = "zoom"


class ZoomFiLMHead(DecodeHead):
    """3×3 conv-BN-ReLU → FiLM by the log zoom → 3×3 conv-BN-ReLU → dropout → 1×1 classifier.

    ``γ, β`` (one per channel) come from a ``1 → film_hidden → 2·channels`` MLP of ``u = log zoom``
    whose last layer starts at zero, so the head starts as a plain two-conv head.

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`.
        film_hidden: width of the MLP's hidden layer.
        adaptive: ``True``: the oracle, ``u`` is each image's log zoom (the batch must carry
            ``zoom``). ``False``: the zoom-blind twin: the same layers and initialisation with
            ``u ≡ 0 = log 1`` — a learnt constant scale and shift, no zoom; it reads nothing from
            the batch. (The name follows :class:`~dynaseg.models.heads.sac.SACHead`'s switch to
            its plain twin, so one sweep key builds both twins.)
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        in_index: int = 4,
        channels: int = 512,
        film_hidden: int = 16,
        adaptive: bool = True,
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        check_arg(
            isinstance(film_hidden, int) and film_hidden >= 1,
            "film_hidden",
            film_hidden,
            "an integer ≥ 1",
        )
        self.conv_in = ConvNormAct(self.in_channels, channels, 3)
        self.film = nn.Sequential(
            nn.Linear(1, film_hidden), nn.ReLU(inplace=True), nn.Linear(film_hidden, 2 * channels)
        )
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.conv_out = ConvNormAct(channels, channels, 3)
        self.adaptive = bool(adaptive)
        self.scene_inputs = (ZOOM,) if self.adaptive else ()

    def log_zoom(self, zoom: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
        """``u`` per image ``(B,)``: the log zoom (oracle) or zeros (twin)."""
        if not self.adaptive:
            return like.new_zeros(batch)
        if zoom is None:
            raise ValueError(
                "ZoomFiLMHead(adaptive=True) needs each image's zoom (a batch entry 'zoom', given "
                "by data=synthetic_scales / synthetic_scales_fixed); adaptive=false is its "
                "zoom-blind twin"
            )
        zoom = torch.as_tensor(zoom, device=like.device).to(like.dtype).reshape(-1)
        if zoom.numel() != batch or not bool((zoom > 0).all()):
            raise ValueError(
                f"ZoomFiLMHead: expected one positive zoom per image ({batch}), got "
                f"{zoom.tolist()} (sliding-window inference batches windows, not images: use "
                "model.inference.mode=whole)"
            )
        return zoom.log()

    def forward(
        self, features: list[torch.Tensor], zoom: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = features[self.in_index]
        u = self.log_zoom(zoom, x.shape[0], x)
        gamma, beta = self.film(u[:, None]).chunk(2, dim=1)
        record_internal(self, "film_gamma", gamma)  # see heads.base.capture_internals
        record_internal(self, "film_beta", beta)
        h = self.conv_in(x)
        h = h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return self.cls_seg(self.conv_out(h))
