"""Map mmsegmentation model-zoo weights (DMNet: ResNetV1c-D8 + DMHead + FCN auxiliary head) onto
our :class:`~dynaseg.models.segmentor.Segmentor`, and back.

mmseg's ``EncoderDecoder`` state dict has three prefixes: ``backbone.`` (``ResNetV1c``),
``decode_head.`` and ``auxiliary_head.``. Our network lives under ``net.`` in the LightningModule:
``net.backbone.body.`` (a timm ``resnet50c``/``resnet101c`` in ``features_only`` mode),
``net.decode_head.`` and ``net.auxiliary_head.<i>.`` (a ModuleList).

- Backbone: mmseg's deep stem ``stem.{0,1,3,4,6,7}`` (conv, BN, ReLU, conv, BN, ReLU, conv, BN,
  ReLU) is timm's ``conv1.{0,1,3,4,6}`` (the three convs and the first two BNs) + ``bn1`` (the third
  BN); ``layer1``–``layer4`` have the same names (``conv1..3``, ``bn1..3``, ``downsample.{0,1}``).
  mmseg's DMNet configs use ``contract_dilation=True``, which is timm's dilation layout too
  (first block of a dilated stage at the previous stage's dilation).
- Heads: our modules carry mmseg's names (``dcm_modules.<i>.{filter_gen_conv, input_redu_conv,
  norm}``, ``bottleneck``, ``conv_seg``; FCN ``convs.<i>``), so only the prefix changes. A single
  mmseg auxiliary head (``auxiliary_head.``) is our ``auxiliary_head.0.``; a list of them
  (``auxiliary_head.<i>.``) keeps its indices.

Paper: "Dynamic Multi-scale Filters for Semantic Segmentation" (He et al., ICCV 2019); weights from
mmsegmentation's DMNet model zoo (configs/dmnet).
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from dynaseg.errors import CheckpointNotFoundError, UserError
from dynaseg.models.state_dicts import diff_state_dicts, listing

# mmseg ResNetV1c stem index -> timm resnet*c name (inside the backbone body)
STEM_TO_TIMM = {
    "0": "conv1.0",
    "1": "conv1.1",
    "3": "conv1.3",
    "4": "conv1.4",
    "6": "conv1.6",
    "7": "bn1",
}
TIMM_TO_STEM = {v: k for k, v in STEM_TO_TIMM.items()}
NET_PREFIX = "net."
BACKBONE_PREFIX = "net.backbone.body."


class CheckpointConversionError(UserError):
    """The source weights do not fit the target model (names the keys)."""


def mmseg_to_dynaseg_key(key: str) -> str | None:
    """Our module key for an mmseg key (``None``: no rule applies)."""
    if key.startswith("backbone.stem."):
        index, _, rest = key[len("backbone.stem.") :].partition(".")
        if index not in STEM_TO_TIMM:
            return None  # ReLUs have no parameters; any other index is not a ResNetV1c stem
        return f"{BACKBONE_PREFIX}{STEM_TO_TIMM[index]}.{rest}"
    if key.startswith("backbone."):
        return BACKBONE_PREFIX + key[len("backbone.") :]
    if key.startswith("decode_head."):
        return NET_PREFIX + key
    if key.startswith("auxiliary_head."):
        rest = key[len("auxiliary_head.") :]
        if re.match(r"\d+\.", rest):  # a list of auxiliary heads
            return f"{NET_PREFIX}auxiliary_head.{rest}"
        return f"{NET_PREFIX}auxiliary_head.0.{rest}"
    return None


def dynaseg_to_mmseg_key(key: str, num_aux_heads: int = 1) -> str | None:
    """The inverse of :func:`mmseg_to_dynaseg_key` (mmseg writes one auxiliary head unindexed)."""
    if key.startswith(BACKBONE_PREFIX):
        rest = key[len(BACKBONE_PREFIX) :]
        for timm_name, index in TIMM_TO_STEM.items():
            if rest.startswith(timm_name + "."):
                return f"backbone.stem.{index}.{rest[len(timm_name) + 1 :]}"
        return "backbone." + rest
    if key.startswith(NET_PREFIX + "decode_head."):
        return key[len(NET_PREFIX) :]
    if key.startswith(NET_PREFIX + "auxiliary_head."):
        rest = key[len(NET_PREFIX + "auxiliary_head.") :]
        if num_aux_heads == 1:
            return "auxiliary_head." + rest.partition(".")[2]
        return "auxiliary_head." + rest
    return None


def mmseg_resnet_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """mmseg's own ImageNet ResNetV1c weights (``open-mmlab://resnet50_v1c``, the initialisation
    of its model-zoo rows) renamed for timm ``resnet*c``: ``stem.N`` (with or without a
    ``backbone.`` prefix) becomes timm's deep stem, every other layer name is shared. ``None``
    when ``state`` holds no ResNetV1c stem (a timm/torchvision file: load it as it is)."""
    out: dict[str, torch.Tensor] = {}
    found_stem = False
    for key, value in state.items():
        key = key[len("backbone.") :] if key.startswith("backbone.") else key
        if key.startswith("stem."):
            index, _, rest = key[len("stem.") :].partition(".")
            if index not in STEM_TO_TIMM:
                raise CheckpointConversionError(
                    f"'{key}': not a ResNetV1c stem layer (expected stem.0/1/3/4/6/7)"
                )
            key, found_stem = f"{STEM_TO_TIMM[index]}.{rest}", True
        out[key] = value
    return out if found_stem else None


def convert_mmseg_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """mmseg tensors → a state dict for a module whose ``state_dict()`` is ``target``.

    Every source key must map to a target key of the same shape and every target key must be
    filled; the only exception is BatchNorm's ``num_batches_tracked`` counter (unused at test
    time, absent from some old checkpoints), which is set to 0 when missing. Otherwise raises
    :class:`CheckpointConversionError` naming the unmapped, unfilled and mismatched keys.

    Returns the converted state dict and the target keys that were filled with defaults.
    """
    renamed: dict[str, torch.Tensor] = {}
    mmseg_name: dict[str, str] = {}
    unmapped = []
    for key, value in source.items():
        new_key = mmseg_to_dynaseg_key(key)
        if new_key is None:
            unmapped.append(key)
        else:
            renamed[new_key], mmseg_name[new_key] = value, key
    diff = diff_state_dicts(renamed, target)
    defaulted = [k for k in diff.missing if k.endswith("num_batches_tracked")]
    diff = dataclasses.replace(
        diff,
        missing=[k for k in diff.missing if k not in defaulted],
        unexpected=[f"{mmseg_name[k]} -> {k}" for k in diff.unexpected],
    )
    problems = diff.problems("source", "model")
    if unmapped:
        problems.insert(
            0,
            f"source keys with no rule (not backbone./decode_head./auxiliary_head. or not a "
            f"ResNetV1c stem) ({len(unmapped)}): {listing(unmapped)}",
        )
    if problems:
        raise CheckpointConversionError(
            "the mmseg weights do not fit the model config:\n  - "
            + "\n  - ".join(problems)
            + "\nCheck the backbone depth (model/backbone=resnet50c|resnet101c), the dataset "
            "(data=... sets num_classes) and the head config against the mmseg config."
        )
    converted = {k: value.to(target[k].dtype) for k, value in renamed.items()}
    converted.update({k: torch.zeros_like(target[k]) for k in defaulted})
    return converted, defaulted


def to_mmseg_state_dict(
    state_dict: Mapping[str, torch.Tensor], num_aux_heads: int = 1
) -> dict[str, torch.Tensor]:
    """Our module's state dict in mmseg's layout (to compare with or load into mmsegmentation)."""
    out = {}
    for key, value in state_dict.items():
        new_key = dynaseg_to_mmseg_key(key, num_aux_heads)
        if new_key is None:
            raise CheckpointConversionError(f"no mmseg name for '{key}'")
        out[new_key] = value
    return out


def load_mmseg_checkpoint(path: Path, trust_pickle: bool = False) -> dict:
    """An mmseg model-zoo ``.pth`` as torch loads it (tensors only unless ``trust_pickle``); a
    missing file or one torch's safe loader refuses is a one-line error naming it."""
    if not path.is_file():
        raise CheckpointNotFoundError(f"mmseg checkpoint '{path}' does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:  # torch's text advises unsafe loading: keep the reason
        lines = str(err).splitlines()
        reason = next(
            (ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else ""
        )
        raise CheckpointConversionError(
            f"'{path}' holds objects torch's safe loader refuses ({reason.strip()}). If you trust "
            "the file, rerun with --trust-pickle"
        ) from None
