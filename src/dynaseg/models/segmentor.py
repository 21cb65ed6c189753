"""The segmentor: backbone → decode head (+ auxiliary heads) → logits at label size."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from dynaseg.errors import ArgumentError, ConfigError
from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.layers import checkpointed, resize
from dynaseg.models.recompute import expanding_pointwise_convs, recomputed_outputs

HeadFactory = Callable[..., DecodeHead]
CONFIG_KEY = "model.net"  # where the segmentor lives in the composed config (for messages)


def build_head(
    factory: HeadFactory, in_channels: list[int], num_classes: int, key: str
) -> DecodeHead:
    """Build a head; an argument it rejects becomes a :class:`ConfigError` that names the config
    key (``model.net.decode_head.channels=0: expected an integer ≥ 1``)."""
    try:
        return factory(in_channels=in_channels, num_classes=num_classes)
    except ArgumentError as err:
        raise err.under(key, head_name(factory)) from err
    except (ValueError, TypeError) as err:  # the heads' own checks name the argument
        raise ConfigError(f"{key} ({head_name(factory)}): {err}") from err


def head_name(factory: HeadFactory) -> str:
    return getattr(getattr(factory, "func", factory), "__name__", "head")


class Segmentor(nn.Module):
    """Encoder-decoder segmentor (mmseg's ``EncoderDecoder``).

    Heads are given as factories (Hydra ``_partial_: true`` configs) and built here with
    ``in_channels=backbone.channels`` and ``num_classes``, so swapping the backbone or the dataset
    never means editing a head config.

    Args:
        backbone: a module returning a list of features with a ``channels`` attribute
            (:class:`~dynaseg.models.backbones.TimmBackbone`).
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
        self.decode_head = build_head(
            decode_head, channels, num_classes, f"{CONFIG_KEY}.decode_head"
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
                factory, channels, num_classes, f"{aux_key}[{i}]" if len(aux) > 1 else aux_key
            )
            for i, factory in enumerate(aux)
        )
        self.recompute_convs = recompute_convs
        self._recomputed: list[nn.Conv2d] = (
            expanding_pointwise_convs(self) if recompute_convs else []
        )
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
