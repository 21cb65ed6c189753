"""The decode-head contract shared by every head (mmsegmentation's ``BaseDecodeHead`` shape)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from dynaseg.errors import check_arg
from dynaseg.models.layers import checkpointed


class DecodeHead(nn.Module):
    """A head takes the backbone's whole feature list and returns class logits.

    Subclasses pick their inputs by index (``in_index`` for the main feature) and implement
    :meth:`forward`; the classifier ``dropout → 1×1 conv`` (:meth:`cls_seg`) is shared.

    A head that needs a per-image quantity besides the image (e.g. the scene zoom of the
    miniature's positive control, :class:`~dynaseg.models.heads.zoom_oracle.ZoomFiLMHead`) names
    its batch entries in ``scene_inputs``; the segmentor then calls ``forward(features, *values)``
    with them in that order. Every other head keeps ``scene_inputs = ()`` and is called
    ``forward(features)``.

    Args:
        in_channels: channels of *every* backbone feature, in the backbone's order (the
            segmentor passes ``backbone.channels``); the head selects what it uses.
        in_index: index of the main input feature in that list (timm out index: 4 = ``layer4``,
            i.e. the papers' "Stage 5"). Configs name it by stage role (``context``; see
            :func:`~dynaseg.models.backbones.feature_roles`), which the Segmentor resolves.
        channels: working width of the head.
        num_classes: number of output classes.
        dropout_ratio: dropout before the classifier (2-D, as mmseg).
    """

    scene_inputs: tuple[str, ...] = ()

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
        # every feature this head reads, as non-negative indices (recorded by feature_index)
        self.feature_indices: set[int] = set()
        for key, value in (("channels", channels), ("num_classes", num_classes)):
            check_arg(isinstance(value, int) and value >= 1, key, value, "an integer ≥ 1")
        check_arg(0 <= dropout_ratio < 1, "dropout_ratio", dropout_ratio, "a value in [0, 1)")
        self.in_index = self.feature_index("in_index", in_index)
        self.in_channels = self.in_channels_all[in_index]
        self.channels = channels
        self.num_classes = num_classes
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        # Set by Segmentor(grad_checkpointing=True): the head is then recomputed in backward, and
        # a head with parallel branches checkpoints each one inside that recomputation
        # (:meth:`branch`), so one branch's activations are alive at a time.
        self.grad_checkpointing = False

    def branch(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        """``module(*args)``, checkpointed when this head is (see ``grad_checkpointing``)."""
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpointed(module, *args)
        return module(*args)

    def feature_index(self, key: str, index: int) -> int:
        """Check that ``index`` (the head argument ``key``, e.g. ``context_index``) picks one of
        the backbone's features, and record it in ``feature_indices``: every head names the
        features it reads through here (a frozen backbone's cache keeps only those,
        :mod:`dynaseg.models.feature_cache`)."""
        n = len(self.in_channels_all)
        # the segmentor puts the head's key path in front (model.net.decode_head.<key>=…)
        check_arg(
            -n <= index < n,
            key,
            index,
            f"a feature index in 0..{n - 1} (the backbone "
            f"gives {n} features, channels {self.in_channels_all})",
        )
        self.feature_indices.add(index % n)
        return index

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        """Classify each pixel: dropout then a 1×1 conv."""
        return self.conv_seg(self.dropout(feat))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# ---------------------------------------------------------------------------- internals hook
# A head's adaptive internals (DMNet's generated filters, CaC-Net's weighting maps, SAC's scale
# maps, DSNet's sampling offsets) are recorded only inside ``capture_internals``. Outside it the
# per-forward cost is one attribute lookup and nothing is stored, so numerics and memory are
# unchanged.

Internals = dict[str, dict[str, torch.Tensor]]


def record_internal(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Record ``value`` (detached) as ``name`` if ``module`` is inside :func:`capture_internals`.

    Called by the heads (and their submodules) at the point where an adaptive quantity is
    computed; ``name`` is prefixed with the module's path inside its head.
    """
    store = module.__dict__.get("_internals_store")
    if store is not None:
        store[module.__dict__["_internals_prefix"] + name] = value.detach()


@contextmanager
def capture_internals(model: nn.Module) -> Iterator[Internals]:
    """Record the adaptive internals of every :class:`DecodeHead` in ``model`` while active.

    Yields ``{head path: {name: tensor}}``, filled by each forward pass inside the block (a later
    pass overwrites an earlier one), e.g. for a DMNet segmentor::

        with capture_internals(segmentor) as internals:
            segmentor(images)
        internals["decode_head"]["dcm_modules.1.filters"]  # (B, c', 3, 3) generated filters

    Names by head: DMNet ``dcm_modules.<i>.filters`` ``(B, c', k, k)``; CaC-Net
    ``cac_modules.<i>.kernel`` ``(B, c, s, s)`` and ``cac_modules.<i>.weights`` ``(B, c, h, w)``
    (the spatial weighting ``W`` of Eq. 2); SAC ``scale`` ``(B, 1, h, w)``; DSNet ``offsets``
    ``(B, 2·k·k, h, w)`` (``(dy, dx)`` per tap, in feature pixels). Heads without adaptive
    internals record nothing (an empty dict). The tensors stay on the model's device.
    """
    internals: Internals = {}
    enabled: list[nn.Module] = []
    heads = [(path, m) for path, m in model.named_modules() if isinstance(m, DecodeHead)]
    try:
        for path, head in heads:
            store = internals.setdefault(path, {})
            for sub_path, sub in head.named_modules():
                sub.__dict__["_internals_store"] = store
                sub.__dict__["_internals_prefix"] = f"{sub_path}." if sub_path else ""
                enabled.append(sub)
        yield internals
    finally:
        for sub in enabled:
            sub.__dict__.pop("_internals_store", None)
            sub.__dict__.pop("_internals_prefix", None)
