"""The segmentor: backbone → decode head (+ auxiliary heads) → logits at label size."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from dynaseg.errors import ArgumentError, ConfigError
from dynaseg.models.backbones import resolve_feature_index
from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.layers import checkpointed, resize
from dynaseg.models.recompute import expanding_pointwise_convs, recomputed_outputs

if TYPE_CHECKING:
    from dynaseg.models.feature_cache import FeatureCache

HeadFactory = Callable[..., DecodeHead]
CONFIG_KEY = "model.net"  # where the segmentor lives in the composed config (for messages)


def build_head(
    factory: HeadFactory,
    in_channels: list[int],
    num_classes: int,
    key: str,
    reductions: Sequence[int] | None = None,
) -> DecodeHead:
    """Build a head; an argument it rejects becomes a :class:`ConfigError` that names the config
    key (``model.net.decode_head.channels=0: expected an integer ≥ 1``). A feature index given as
    a stage role (``in_index: context``, ``low_index: low_level``; see
    :func:`~dynaseg.models.backbones.feature_roles`) is resolved with the features' strides
    ``reductions`` first."""
    try:
        return with_feature_roles(factory, reductions, key)(
            in_channels=in_channels, num_classes=num_classes
        )
    except ArgumentError as err:
        raise err.under(key, head_name(factory)) from err
    except (ValueError, TypeError) as err:  # the heads' own checks name the argument
        raise ConfigError(f"{key} ({head_name(factory)}): {err}") from err


def with_feature_roles(
    factory: HeadFactory, reductions: Sequence[int] | None, key: str
) -> HeadFactory:
    """``factory`` with every ``*_index`` keyword that names a stage role replaced by the index
    of that role in features of strides ``reductions``."""
    keywords = getattr(factory, "keywords", {})
    roles = {k: v for k, v in keywords.items() if k.endswith("_index") and isinstance(v, str)}
    if not roles:
        return factory
    if reductions is None:
        raise ConfigError(
            f"{key}: stage roles {roles} need a backbone that reports its feature strides "
            "(`reductions`, as TimmBackbone does); give feature indices instead"
        )
    return functools.partial(
        factory,
        **{k: resolve_feature_index(v, reductions, k) for k, v in roles.items()},
    )


def head_name(factory: HeadFactory) -> str:
    return getattr(getattr(factory, "func", factory), "__name__", "head")


class Segmentor(nn.Module):
    """Encoder-decoder segmentor (mmseg's ``EncoderDecoder``).

    Heads are given as factories (Hydra ``_partial_: true`` configs) and built here with
    ``in_channels=backbone.channels`` and ``num_classes``, so swapping the backbone or the dataset
    never means editing a head config: a head config names its inputs by stage role (``context``,
    ``auxiliary``, ``low_level``), resolved here from the backbone's strides.

    Args:
        backbone: a module returning a list of NCHW features with ``channels`` (and, for stage
            roles, ``reductions``) attributes (:class:`~dynaseg.models.backbones.TimmBackbone`).
        decode_head: factory ``(in_channels=..., num_classes=...) -> DecodeHead``.
        num_classes: classes every head predicts (the datamodule's, handed on by the
            :class:`~dynaseg.training.module.SegmentationModule`).
        auxiliary_head: optional factory for the deep-supervision head, or a list of them.
        grad_checkpointing: activation checkpointing in training: each backbone stage and each
            head keeps only its input and recomputes its activations in backward (less memory,
            one more forward pass; same losses and gradients).
        recompute_convs: in training, keep the input instead of the output of every channel-
            expanding 1×1 convolution (a ResNet bottleneck's ``conv3``) and recompute the output
            when backward needs it (:mod:`dynaseg.models.recompute`): ~570 MB less for
            DMNet-R50-D8 at 2×512², ~3% more convolution FLOPs, same losses and gradients.

    ``forward`` returns the decode logits bilinearly resized (align_corners False) to ``out_size``
    (default: the input size). ``forward_train`` returns every head's logits, for the losses.
    ``scene``: the per-image batch entries named by the heads' ``scene_inputs`` (see
    :attr:`scene_inputs`), handed to those heads only; heads that name none never see it.
    """

    def __init__(
        self,
        backbone: nn.Module,
        decode_head: HeadFactory,
        num_classes: int,
        auxiliary_head: HeadFactory | Sequence[HeadFactory] | None = None,
        grad_checkpointing: bool = False,
        recompute_convs: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        channels = list(backbone.channels)
        reductions = getattr(backbone, "reductions", None)
        self.decode_head = build_head(
            decode_head, channels, num_classes, f"{CONFIG_KEY}.decode_head", reductions
        )
        if auxiliary_head is None:
            aux = []
        elif callable(auxiliary_head):
            aux = [auxiliary_head]
        elif isinstance(auxiliary_head, Mapping):  # values merged onto "no head" by an experiment
            raise ConfigError(
                f"model.net.auxiliary_head is {dict(auxiliary_head)} without a _target_: values "
                "were set for an auxiliary head but none is selected (model/auxiliary_head=none); "
                "add model.net.auxiliary_head=null to drop them, or select one "
                "(model/auxiliary_head=fcn)"
            )
        else:
            aux = list(auxiliary_head)
        aux_key = f"{CONFIG_KEY}.auxiliary_head"
        self.auxiliary_head = nn.ModuleList(
            build_head(
                factory,
                channels,
                num_classes,
                f"{aux_key}[{i}]" if len(aux) > 1 else aux_key,
                reductions,
            )
            for i, factory in enumerate(aux)
        )
        self.recompute_convs = recompute_convs
        self._recomputed: list[nn.Conv2d] = (
            expanding_pointwise_convs(self) if recompute_convs else []
        )
        # Set by a run's frozen_feature_cache callback (dynaseg.models.feature_cache); never saved.
        self.feature_cache: FeatureCache | None = None
        self.grad_checkpointing = grad_checkpointing
        if grad_checkpointing:
            if not hasattr(backbone, "set_grad_checkpointing"):
                raise ConfigError(
                    f"Segmentor(grad_checkpointing=True): backbone {type(backbone).__name__} has "
                    "no set_grad_checkpointing()"
                )
            backbone.set_grad_checkpointing(True)
            for head in (self.decode_head, *self.auxiliary_head):
                head.grad_checkpointing = True

    @property
    def scene_inputs(self) -> tuple[str, ...]:
        """Batch entries (besides the image) some head reads per image, e.g. ``("zoom",)``."""
        names: list[str] = []
        for head in (self.decode_head, *self.auxiliary_head):
            names += [k for k in head.scene_inputs if k not in names]
        return tuple(names)

    @property
    def feature_indices(self) -> tuple[int, ...]:
        """The backbone features some head reads (non-negative indices, sorted)."""
        used: set[int] = set()
        for head in (self.decode_head, *self.auxiliary_head):
            used |= head.feature_indices
        return tuple(sorted(used))

    def run_head(
        self,
        head: DecodeHead,
        feats: list[torch.Tensor],
        scene: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``head(feats, *its scene inputs)``, checkpointed in training when the heads are."""
        missing = [k for k in head.scene_inputs if k not in (scene or {})]
        if missing:
            raise ConfigError(
                f"{type(head).__name__} reads {missing} per image, which this batch does not "
                f"carry (it has {sorted(scene or {})}); the dataset must provide it "
                "(data=synthetic_scales or synthetic_scales_fixed give 'zoom')"
            )
        values = [scene[k] for k in head.scene_inputs] if scene else []
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpointed(head, feats, *values)
        return head(feats, *values)

    def extract_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"Segmentor expects images (B, 3, H, W), got {tuple(images.shape)}")
        if self.feature_cache is not None:
            return self.feature_cache.features(self.backbone, images, self.feature_indices)
        return self.backbone(images)

    def forward_train(
        self, images: torch.Tensor, scene: Mapping[str, torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """Logits of the decode head then of each auxiliary head, at feature resolution."""
        with recomputed_outputs(self._recomputed):
            feats = self.extract_features(images)
            heads = [self.decode_head, *self.auxiliary_head]
            return [self.run_head(head, feats, scene) for head in heads]

    def decode_logits(
        self, images: torch.Tensor, scene: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Decode-head logits at feature resolution (what the inference modes resize)."""
        feats = self.extract_features(images)
        if not self.decode_head.scene_inputs:
            return self.decode_head(feats)
        return self.run_head(self.decode_head, feats, scene)

    def forward(
        self,
        images: torch.Tensor,
        out_size: tuple[int, int] | None = None,
        scene: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return resize(self.decode_logits(images, scene), out_size or images.shape[-2:])
