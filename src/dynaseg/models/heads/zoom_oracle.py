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
import torch.nn.functional as F
from torch import nn

from dynaseg.errors import check_arg
from dynaseg.models.heads.base import DecodeHead, record_internal
from dynaseg.models.layers import ConvNormAct

ZOOM = "zoom"


class ZoomFiLMHead(DecodeHead):
    """3×3 conv-BN-ReLU → FiLM by the log zoom → 3×3 conv-BN-ReLU → dropout → 1×1 classifier.

    ``γ, β`` (one per channel) come from a ``1 → film_hidden → 2·channels`` MLP of ``u = log zoom``
    whose last layer starts at zero, so the head starts as a plain two-conv head.

    With ``film_extra_index`` (docs/ablations.md, R2: the zoom read at an earlier depth) the head
    also reads that feature (e.g. ``auxiliary``, ResNet ``layer3``): a 3×3 conv-BN-ReLU of it,
    FiLM-modulated by its own ``γ', β'`` MLP of the same ``u`` (also zero-initialised), resized to
    the main feature's size if it differs, is added to the main branch before the second conv.
    The twin (``adaptive=False``) has the same extra branch with ``u ≡ 0``.

    Args:
        in_channels, num_classes, in_index, channels, dropout_ratio: see :class:`DecodeHead`.
        film_hidden: width of the MLP's hidden layer.
        film_extra_index: a second feature to read and FiLM-modulate (index or stage role), or
            ``None`` (the default): the main feature only.
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
        film_extra_index: int | None = None,
    ) -> None:
        super().__init__(in_channels, in_index, channels, num_classes, dropout_ratio)
        check_arg(
            isinstance(film_hidden, int) and film_hidden >= 1,
            "film_hidden",
            film_hidden,
            "an integer ≥ 1",
        )
        self.conv_in = ConvNormAct(self.in_channels, channels, 3)
        self.film = film_mlp(film_hidden, channels)
        self.film_extra_index = (
            None
            if film_extra_index is None
            else self.feature_index("film_extra_index", film_extra_index)
        )
        if self.film_extra_index is not None:
            extra_channels = self.in_channels_all[self.film_extra_index]
            self.conv_extra = ConvNormAct(extra_channels, channels, 3)
            self.film_extra = film_mlp(film_hidden, channels)
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
        h = film(self.conv_in(x), gamma, beta)
        if self.film_extra_index is not None:
            gamma_e, beta_e = self.film_extra(u[:, None]).chunk(2, dim=1)
            record_internal(self, "film_extra_gamma", gamma_e)
            record_internal(self, "film_extra_beta", beta_e)
            e = film(self.conv_extra(features[self.film_extra_index]), gamma_e, beta_e)
            if e.shape[-2:] != h.shape[-2:]:
                e = F.interpolate(e, size=h.shape[-2:], mode="bilinear", align_corners=False)
            h = h + e
        return self.cls_seg(self.conv_out(h))


def film_mlp(hidden: int, channels: int) -> nn.Sequential:
    """``u ↦ (γ, β)``: a ``1 → hidden → 2·channels`` MLP whose last layer starts at zero (so the
    modulation starts as the identity)."""
    mlp = nn.Sequential(
        nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels)
    )
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


def film(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """FiLM (arXiv:1709.07871, Eq. 1–2) as a residual gain: ``h · (1 + γ) + β`` per channel."""
    return h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
