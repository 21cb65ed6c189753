"""Backbones are borrowed from timm: any ``timm.create_model(..., features_only=True)``, as a list
of NCHW maps with known channels and strides (:class:`TimmBackbone`; plain ViTs through
:class:`SimpleFeaturePyramid`)."""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import timm
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig, ListConfig, OmegaConf
from timm.layers import LayerNorm2d
from torch import nn

from dynaseg.errors import CheckpointNotFoundError, ConfigError, check_arg
from dynaseg.models.layers import channels_last_max_pools, checkpointed, resize
from dynaseg.models.mmseg_import import mmseg_resnet_to_timm
from dynaseg.models.state_dicts import diff_state_dicts, listing, unwrap_state_dict

log = logging.getLogger(__name__)


def read_mmseg_resnet(path: Path) -> dict[str, torch.Tensor] | None:
    """The weights of ``path`` renamed for timm when it is mmseg's ResNetV1c ImageNet file
    (``resnet50_v1c``/``resnet101_v1c``: ``stem.N`` keys), else ``None``. A ``.pth``/``.pt``
    file that torch cannot read as plain tensors is left to timm, which names the problem."""
    if path.suffix not in (".pth", ".pt"):
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(checkpoint, dict):
        return None
    return mmseg_resnet_to_timm(unwrap_state_dict(checkpoint))


def load_mmseg_resnet(body: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Load renamed mmseg ResNetV1c weights into a timm ``features_only`` body: every body
    parameter and buffer must come from the file (the classifier ``fc`` is dropped), except
    BatchNorm's ``num_batches_tracked`` step counters (unused: every BN has a momentum; absent
    from some files, as :func:`~dynaseg.models.mmseg_import.convert_mmseg_state_dict` allows),
    which keep the body's 0. Returns those filled keys, and logs how many."""
    weights = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    # counters the file lacks take the body's own (0); the diff below would call them missing
    own = body.state_dict()
    filled = [k for k in own if k.endswith("num_batches_tracked") and k not in weights]
    weights = {**weights, **{k: own[k] for k in filled}}
    if filled:
        log.info(
            "%s: %d BatchNorm num_batches_tracked counter(s) not in the file, kept at 0 (%s)",
            path, len(filled), listing(filled, 3),
        )  # fmt: skip
    diff = diff_state_dicts(weights, own)
    if diff:
        raise ConfigError(
            f"model.net.backbone.checkpoint_path='{path}': mmseg ResNetV1c weights that do not "
            f"fit this backbone ({'; '.join(diff.problems('file', 'backbone'))}); expected "
            "resnet50_v1c for resnet50c, resnet101_v1c for resnet101c"
        )
    body.load_state_dict(weights)
    return filled


def hub_endpoint() -> str:
    """The Hugging Face Hub address timm downloads pretrained weights from."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub accepts a connection: ``False`` at once under ``HF_HUB_OFFLINE=1``,
    otherwise one name lookup and TCP connect of at most ``timeout`` seconds."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    url = urlsplit(hub_endpoint())
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


@contextmanager
def hub_offline(offline: bool = True) -> Iterator[None]:
    """huggingface_hub's offline mode for the block (cached files only, no retries)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


# Stage roles a head can ask for instead of a feature index (resolved by the Segmentor from the
# backbone's strides, so one head config fits a 5-level ResNet and a 4-level ConvNeXt alike).
FEATURE_ROLES = ("context", "auxiliary", "low_level")
# What `output_stride` < the native stride needs; said in the error when a family cannot.
DILATING_FAMILIES = (
    "ResNet/ResNet-D/ResNeXt/ResNeSt/SE-ResNet, ConvNeXt/ConvNeXtV2, EfficientNet, MobileNetV3, "
    "RegNet (timm dilates them), and plain ViT/DeiT (the feature pyramid resamples)"
)


# timm feature classes whose input size must be a multiple of a stride: HRNet's branches are
# fused by exact 2× up/downsampling.
PADDED_FAMILIES = {"HighResolutionNetFeatures": 32}


def feature_roles(reductions: Sequence[int]) -> dict[str, int]:
    """The feature index of each stage role in a backbone whose features have these strides.

    ``context``: the deepest feature (ResNet ``layer4``, the papers' "Stage 5"; a head's main
    input and DMNet's filter context). ``auxiliary``: the one before it (``layer3``, "Stage 4":
    the deep-supervision head). ``low_level``: the first feature at stride ≥ 8 (``layer2``, DSNet's
    X(3)). For a ResNet's five features they are 4, 3 and 2 — the indices the configs used.
    """
    n = len(reductions)
    low = next((i for i, r in enumerate(reductions) if r >= 8), n - 1)
    return {"context": n - 1, "auxiliary": max(n - 2, 0), "low_level": low}


def resolve_feature_index(value: int | str, reductions: Sequence[int], key: str) -> int:
    """``value`` as a feature index: an ``int`` as it is (the head checks its range), a role
    name (:data:`FEATURE_ROLES`) looked up with :func:`feature_roles`."""
    if not isinstance(value, str):
        return value
    roles = feature_roles(reductions)
    check_arg(
        value in roles, key, value, f"a feature index or a stage role ({', '.join(FEATURE_ROLES)})"
    )
    return roles[value]


def create_feature_body(
    name: str, pretrained: bool, output_stride: int, kwargs: dict[str, Any]
) -> tuple[nn.Module, bool]:
    """``(timm features_only model, dilated)``: dilated to ``output_stride`` where the family
    takes timm's ``output_stride``; otherwise its native stride (``dilated`` False). Families
    without that argument (Swin, ViT, EfficientViT, MambaOut, ...) are built with timm's
    ``feature_cls='getter'`` (``forward_intermediates(output_fmt='NCHW')``: Swin's NHWC stages
    come out NCHW) and, where the family has it, ``dynamic_img_size`` (ViT position embeddings
    interpolated to the input's patch grid, Swin padded to its windows)."""
    try:
        body = timm.create_model(name, pretrained=pretrained, output_stride=output_stride, **kwargs)
        return body, True
    except TypeError as err:
        if "output_stride" not in str(err):
            raise
        takes_output_stride = False
    except AssertionError:  # timm's HRNet: `assert output_stride == 32`
        if output_stride == 32:
            raise
        takes_output_stride = True
    if takes_output_stride:
        return timm.create_model(name, pretrained=pretrained, output_stride=32, **kwargs), False
    getter = dict(kwargs, feature_cls="getter")
    try:
        return timm.create_model(
            name, pretrained=pretrained, dynamic_img_size=True, **getter
        ), False
    except TypeError as err:
        if "dynamic_img_size" not in str(err):
            raise
    return timm.create_model(name, pretrained=pretrained, **getter), False


class TimmBackbone(nn.Module):
    """A timm model in ``features_only`` mode that returns a list of NCHW feature maps.

    The contract every head relies on: ``forward`` gives one map per entry of ``channels`` and
    ``reductions`` (the map's stride, dilation included), shallow to deep. Heads pick maps by
    index or by role (:func:`feature_roles`: ``context`` = the deepest, ``auxiliary`` = the one
    before, ``low_level`` = the first at stride ≥ 8).

    With timm's default out indices a ResNet gives five maps and the index *is* timm's out index:
    4 = ``layer4`` (the papers' "Stage 5"), 3 = ``layer3`` ("Stage 4"), 2 = ``layer2``,
    1 = ``layer1``, 0 = the stem. ``output_stride=8`` gives the dilated "D8" ResNets of
    DeepLab/PSPNet/DMNet (dilations 2 and 4 in the last two stages). ConvNeXt, Swin, EfficientViT
    and MambaOut give four maps (strides 4-32), HRNet and EfficientNet/MobileNetV3 five.

    Plain ViTs (every block at one stride: ViT, DeiT, BEiT, EVA, ... any patch size) go through
    :class:`SimpleFeaturePyramid`: the tokens of four blocks at even depths, reshaped to maps and
    resampled to strides 4, 8, 16, 32 (each capped at ``output_stride``), as ViTDet's simple
    feature pyramid (Li et al., "Exploring Plain Vision Transformer Backbones for Object
    Detection", arXiv:2203.16527, §3) and SETR-MLA (Zheng et al., arXiv:2012.15840) do. Their
    position embeddings are interpolated to each input's patch grid (timm ``dynamic_img_size``),
    and inputs are zero-padded to a multiple of the patch size.

    Output stride: families timm can dilate get ``output_stride`` by dilation; plain ViTs by the
    pyramid's resampling; the others (Swin, HRNet, EfficientViT, MambaOut, ...) keep their native
    stride — with a warning, or an error when ``require_output_stride`` is true. ``output_stride``
    (the attribute) is the stride the deepest map really has.

    Args:
        name: timm model name, e.g. ``resnet50c`` (mmseg's ResNetV1c deep stem).
        pretrained: load ImageNet weights through timm (needs network or a local ``checkpoint_path``).
        checkpoint_path: local weight file (``.pth``/``.safetensors``) for the *classification* model;
            loaded by timm, works offline.
        output_stride: 8, 16 or 32; ``None`` = the family's native stride.
        out_indices: which timm features to return (``None``: every level timm offers; for a plain
            ViT the four block indices of the pyramid, default evenly spaced: 2, 5, 8, 11 of 12).
        require_output_stride: a family that cannot reach ``output_stride`` is an error instead
            of a warning.
        **model_kwargs: passed to ``timm.create_model`` (e.g. ``channels``, ``stem_width``,
            ``drop_path_rate``) — used to size the CPU quick-start backbone.
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        output_stride: int | None = 8,
        out_indices: Sequence[int] | None = None,
        require_output_stride: bool = False,
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        key = "model.net.backbone"
        check_arg(
            output_stride in (8, 16, 32, None),
            f"{key}.output_stride",
            output_stride,
            "8, 16, 32 or null (the family's native stride)",
        )
        check_arg(
            out_indices is None or (len(out_indices) > 0 and all(int(i) >= 0 for i in out_indices)),
            f"{key}.out_indices",
            None if out_indices is None else list(out_indices),
            "feature indices ≥ 0 or null (every level)",
        )
        if not timm.is_model(name):
            raise ConfigError(
                f"{key}.name={name!r}: not a timm model; expected a name from timm.list_models(), "
                f"e.g. {', '.join(timm.list_models(name[:4] + '*')[:4]) or 'resnet50c'}"
            )
        # Hydra hands lists over as ListConfig, which some timm constructors reject (torch.split)
        kwargs: dict[str, Any] = dict(
            features_only=True,
            **{
                k: OmegaConf.to_container(v) if isinstance(v, ListConfig | DictConfig) else v
                for k, v in model_kwargs.items()
            },
        )
        if out_indices is not None:
            kwargs["out_indices"] = tuple(int(i) for i in out_indices)
        mmseg_weights = None
        if checkpoint_path:
            path = Path(checkpoint_path).expanduser()
            if not path.is_file():
                raise CheckpointNotFoundError(
                    f"backbone checkpoint_path '{path}' does not exist; point "
                    "model.net.backbone.checkpoint_path at a local timm/torchvision weight file "
                    "(or mmseg's resnet*_v1c ImageNet file) or set it to null"
                )
            mmseg_weights = read_mmseg_resnet(path)
            if mmseg_weights is None:  # timm / torchvision layout: timm loads it
                kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
                pretrained = True
        # Offline (no route to the Hub, or HF_HUB_OFFLINE=1): use cached weights only and fail at
        # once, instead of after huggingface_hub's minute of retries per file.
        offline = pretrained and not checkpoint_path and not hub_reachable()
        try:
            with hub_offline(offline):
                self.body, dilated = create_feature_body(
                    name, pretrained, output_stride or 32, kwargs
                )
        except RuntimeError as err:
            raise RuntimeError(
                f"could not create backbone '{name}' (pretrained={pretrained}): {err}"
            ) from err
        except OSError as err:  # not cached and no network, or the download failed
            why = (
                f"the Hugging Face Hub ({hub_endpoint()}) cannot be reached and they are not in "
                "the local cache"
                if offline
                else f"the download failed ({err})"
            )
            raise ConfigError(
                f"{key}.pretrained=true: could not load ImageNet weights for backbone '{name}': "
                f"{why}; expected network access, a local weight file "
                f"({key}.checkpoint_path=/path/to/weights) or {key}.pretrained=false to train "
                "from scratch"
            ) from err
        # the keys filled from the body's defaults instead of the file (mmseg weights only)
        self.filled_keys: list[str] = []
        if mmseg_weights is not None:
            self.filled_keys = load_mmseg_resnet(self.body, mmseg_weights, Path(checkpoint_path))
        # same outputs, faster on the CPU; swaps only nn.MaxPool2d modules, whatever the family
        channels_last_max_pools(self.body)
        self.name = name
        channels = list(self.body.feature_info.channels())
        reductions = list(self.body.feature_info.reduction())
        self.pyramid: SimpleFeaturePyramid | None = None
        if len(reductions) > 1 and len(set(reductions)) == 1:  # a plain ViT: one stride throughout
            depth = len(getattr(getattr(self.body, "model", self.body), "feature_info", reductions))
            self.block_indices = self.pyramid_blocks(out_indices, depth, f"{key}.out_indices")
            self.pyramid = SimpleFeaturePyramid(channels[-1], reductions[0], output_stride or 32)
            channels, reductions = self.pyramid.channels, self.pyramid.reductions
        elif not dilated and output_stride is not None and output_stride < max(reductions):
            message = (
                f"{key}.output_stride={output_stride}: '{name}' "
                f"({type(getattr(self.body, 'model', self.body)).__name__}) cannot be dilated "
                f"(native output stride {max(reductions)}); families that can: "
                f"{DILATING_FAMILIES}"
            )
            if require_output_stride:
                raise ConfigError(f"{message}; set {key}.output_stride=null for the native stride")
            rank_zero_warn(f"{message}: using its native stride {max(reductions)}")
        self.channels: list[int] = channels
        self.reductions: list[int] = reductions
        self.output_stride = max(reductions)
        # Inputs are zero-padded (right, bottom) to a multiple of this and the maps cropped back
        # to ceil(size / stride): a plain ViT's patch size, HRNet's 32 (its branches are fused
        # by exact 2× resampling); 1 = any size (ResNet-like, ConvNeXt, Swin pads itself).
        self.size_divisor = (
            self.pyramid.patch_stride
            if self.pyramid is not None
            else PADDED_FAMILIES.get(type(self.body).__name__, 1)
        )

    def layer_decay_groups(self, rate: float, weight_decay: float) -> list[dict[str, Any]]:
        """Parameter groups of the timm model for layer-wise LR decay (``lr_scale``, its
        ``weight_decay``, ``name``): timm's ``param_groups_layer_decay`` with the model's
        ``group_matcher`` (blocks of a ViT, stages/blocks of a Swin; timm's automatic grouping
        for feature wrappers without one) and its ``no_weight_decay()`` tensors. The pyramid of a
        plain ViT is not in them (it trains as the heads do)."""
        from timm.optim import param_groups_layer_decay

        model = getattr(self.body, "model", self.body)
        no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
        groups = param_groups_layer_decay(model, weight_decay, no_decay, layer_decay=rate)
        if rate < 1 and len({group["lr_scale"] for group in groups}) == 1:
            raise ConfigError(
                f"model.layer_decay={rate}: timm groups the parameters of backbone '{self.name}' "
                f"({type(model).__name__}) into one layer (its feature wrapper has no "
                "group_matcher), so layer decay would do nothing; it works for the families timm "
                "builds through forward_intermediates (Swin, ViT/DeiT, EfficientViT, MambaOut); "
                "set model.layer_decay=null (model/recipe=adamw_poly)"
            )
        return [dict(group, name=f"layer{i}") for i, group in enumerate(groups)]

    @staticmethod
    def pyramid_blocks(out_indices: Sequence[int] | None, depth: int, key: str) -> list[int]:
        """The four blocks the pyramid of a plain ViT reads: ``out_indices`` or evenly spaced
        (ViTDet/SETR-MLA: blocks 3, 6, 9, 12 of 12, i.e. indices 2, 5, 8, 11)."""
        if out_indices is None:
            return [depth * (i + 1) // 4 - 1 for i in range(4)]
        check_arg(
            len(out_indices) == 4,
            key,
            list(out_indices),
            f"four block indices for the plain ViT's feature pyramid (of 0..{depth - 1})",
        )
        return [int(i) for i in out_indices]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing (see :meth:`forward`; timm's ``set_grad_checkpointing`` for
        bodies that are not a plain feature list)."""
        self.grad_checkpointing = enable
        if not hasattr(self.body, "return_layers"):
            model = getattr(self.body, "model", self.body)
            try:
                model.set_grad_checkpointing(enable)
            except AssertionError as err:  # timm's HRNet: "gradient checkpointing not supported"
                raise ConfigError(
                    f"model.net.grad_checkpointing=true: timm's {type(model).__name__} "
                    f"('{self.name}') does not support gradient checkpointing ({err}); set "
                    "model.net.grad_checkpointing=false"
                ) from err

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[-2:]
        if self.size_divisor == 1:
            return self.features(x)
        x = F.pad(x, (0, -width % self.size_divisor, 0, -height % self.size_divisor))
        return [
            f[..., : -(-height // r), : -(-width // r)]
            for f, r in zip(self.features(x), self.reductions, strict=True)
        ]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.pyramid is not None:
            return self.pyramid(self.vit_blocks(x))
        if not (
            getattr(self, "grad_checkpointing", False)
            and torch.is_grad_enabled()
            and hasattr(self.body, "return_layers")
        ):
            return list(self.body(x))
        # timm's FeatureListNet loop, checkpointed in two levels: each run of modules up to a
        # returned feature (the stem with maxpool and layer1; then each stage) keeps only its
        # input, and while a stage is recomputed in backward its blocks are checkpointed again,
        # so at most one block's activations are alive at a time. BN running statistics are
        # updated once (the recomputations freeze them).
        features = []
        segment: list[nn.Module] = []
        for name, module in self.body.items():
            segment.append(module)
            if name in self.body.return_layers:
                x = checkpointed(_CheckpointedChain(*segment), x)
                features.append(x)
                segment = []
        return features

    def vit_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The plain ViT's maps after the pyramid's blocks (NCHW, at the patch stride)."""
        vit = getattr(self.body, "model", self.body)
        return vit.forward_intermediates(
            x, indices=self.block_indices, output_fmt="NCHW", intermediates_only=True
        )


class _CheckpointedChain(nn.Sequential):
    """Modules applied in turn; a stage (an ``nn.Sequential`` of blocks) has each block
    checkpointed when gradients are on — the inner level of :meth:`TimmBackbone.forward`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self:
            if isinstance(module, nn.Sequential) and len(module) > 1 and torch.is_grad_enabled():
                for block in module:
                    x = checkpointed(block, x)
            else:
                x = module(x)
        return x


class SimpleFeaturePyramid(nn.Module):
    """Four maps of a plain ViT (all at the patch stride) resampled to strides 4, 8, 16, 32.

    ViTDet's simple feature pyramid (Li et al., arXiv:2203.16527, §3 and Fig. 2c), fed as in
    SETR-MLA (Zheng et al., arXiv:2012.15840) with one block per level instead of the last block
    for all: upsampling by 2 is a stride-2 2×2 transposed conv halving the channels (by 4 two of
    them with LayerNorm + GELU between), downsampling by 2 a 2×2 max-pool, and a ratio that is
    not a power of two (patch 14) a bilinear resize. Each level's stride is capped at
    ``output_stride`` (OS8: 4, 8, 8, 8), so a head that needs OS8 maps gets them.

    Args:
        channels: the ViT's width (every block's).
        patch_stride: the ViT's patch size (the stride of its token map).
        output_stride: the coarsest stride the pyramid gives (8, 16 or 32).
    """

    def __init__(self, channels: int, patch_stride: int, output_stride: int = 32) -> None:
        super().__init__()
        self.patch_stride = patch_stride
        self.reductions = [min(s, output_stride) for s in (4, 8, 16, 32)]
        levels: list[nn.Module] = []
        self.channels: list[int] = []
        for stride in self.reductions:
            level, width = self.resampler(channels, patch_stride, stride)
            levels.append(level)
            self.channels.append(width)
        self.levels = nn.ModuleList(levels)

    @staticmethod
    def resampler(channels: int, patch_stride: int, stride: int) -> tuple[nn.Module, int]:
        """``(module, out channels)`` taking a map at ``patch_stride`` to ``stride``."""
        if stride == patch_stride:
            return nn.Identity(), channels
        ratio = patch_stride / stride
        steps = round(math.log2(ratio))
        if 2.0**steps != ratio:
            return _Rescale(ratio), channels
        if steps < 0:
            return nn.MaxPool2d(2 ** (-steps)), channels
        layers: list[nn.Module] = []
        width = channels
        for i in range(steps):
            if i:
                layers += [LayerNorm2d(width), nn.GELU()]
            layers.append(nn.ConvTranspose2d(width, width // 2, 2, stride=2))
            width //= 2
        return nn.Sequential(*layers), width

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [level(x) for level, x in zip(self.levels, maps, strict=True)]


class _Rescale(nn.Module):
    """Bilinear resize by a fixed factor (a pyramid level whose ratio is not a power of two)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (max(1, round(x.shape[-2] * self.factor)), max(1, round(x.shape[-1] * self.factor)))
        return resize(x, size)
