"""Backbones are borrowed from timm: any ``timm.create_model(..., features_only=True)``."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import timm
import torch
from torch import nn

from dynaseg.errors import CheckpointNotFoundError, ConfigError, check_arg
from dynaseg.models.layers import checkpointed
from dynaseg.models.mmseg_import import mmseg_resnet_to_timm
from dynaseg.models.state_dicts import diff_state_dicts, unwrap_state_dict


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


def load_mmseg_resnet(body: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Load renamed mmseg ResNetV1c weights into a timm ``features_only`` body: every body
    parameter and buffer must come from the file (the classifier ``fc`` is dropped)."""
    weights = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    diff = diff_state_dicts(weights, body.state_dict())
    if diff:
        raise ConfigError(
            f"model.net.backbone.checkpoint_path='{path}': mmseg ResNetV1c weights that do not "
            f"fit this backbone ({'; '.join(diff.problems('file', 'backbone'))}); expected "
            "resnet50_v1c for resnet50c, resnet101_v1c for resnet101c"
        )
    body.load_state_dict(weights)


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


class TimmBackbone(nn.Module):
    """A timm model in ``features_only`` mode that returns its feature list.

    With the default ``out_indices=(0, 1, 2, 3, 4)`` the list index *is* timm's out index, so for a
    ResNet index 4 = ``layer4`` (the papers' "Stage 5"), 3 = ``layer3`` ("Stage 4"), 2 = ``layer2``,
    1 = ``layer1``, 0 = the stem. ``output_stride=8`` gives the dilated "D8" ResNets of
    DeepLab/PSPNet/DMNet (dilations 2 and 4 in the last two stages).

    Args:
        name: timm model name, e.g. ``resnet50c`` (mmseg's ResNetV1c deep stem).
        pretrained: load ImageNet weights through timm (needs network or a local ``checkpoint_path``).
        checkpoint_path: local weight file (``.pth``/``.safetensors``) for the *classification* model;
            loaded by timm, works offline.
        output_stride: 8, 16 or 32.
        out_indices: which timm features to return.
        **model_kwargs: passed to ``timm.create_model`` (e.g. ``channels``, ``stem_width``,
            ``drop_path_rate``) — used to size the CPU quick-start backbone.
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        output_stride: int = 8,
        out_indices: Sequence[int] = (0, 1, 2, 3, 4),
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        key = "model.net.backbone"
        check_arg(
            output_stride in (8, 16, 32), f"{key}.output_stride", output_stride, "8, 16 or 32"
        )
        check_arg(
            len(out_indices) > 0 and all(int(i) >= 0 for i in out_indices),
            f"{key}.out_indices",
            list(out_indices),
            "feature indices ≥ 0",
        )
        if not timm.is_model(name):
            raise ConfigError(
                f"{key}.name={name!r}: not a timm model; expected a name from timm.list_models(), "
                f"e.g. {', '.join(timm.list_models(name[:4] + '*')[:4]) or 'resnet50c'}"
            )
        kwargs: dict[str, Any] = dict(
            features_only=True,
            output_stride=output_stride,
            out_indices=tuple(out_indices),
            **model_kwargs,
        )
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
                self.body = timm.create_model(name, pretrained=pretrained, **kwargs)
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
        if mmseg_weights is not None:
            load_mmseg_resnet(self.body, mmseg_weights, Path(checkpoint_path))
        self.name = name
        self.output_stride = output_stride
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing (see :meth:`forward`; timm's ``set_grad_checkpointing`` for
        bodies that are not a plain feature list)."""
        self.grad_checkpointing = enable
        if not hasattr(self.body, "return_layers"):
            self.body.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
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
