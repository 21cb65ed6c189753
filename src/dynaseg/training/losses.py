"""Cross-entropy on logits upsampled to the label size, without materialising the upsampled logits.

The mmseg loss upsamples every head's ``(B, K, h, w)`` logits bilinearly (``align_corners=False``)
to the label size ``(H, W)`` (8× per side for the D8 networks) before a per-pixel cross-entropy.
Done literally, autograd keeps the ``(B, K, H, W)`` log-softmax for backward and builds three more
tensors of that size in backward — at ADE20K size (150 classes, 2×512²) 315 MB each, per head.

:func:`resized_cross_entropy` computes the same per-pixel losses band by band (a few output rows
of one image at a time): the band of upsampled logits is built, reduced to ``logsumexp − logit of
the label`` and dropped. Only the low-resolution logits, the labels and the per-pixel
``logsumexp`` ``(B, H, W)`` are kept; backward rebuilds each band, forms
``softmax − one_hot`` and applies the adjoint of the bilinear interpolation (index-adds onto
the low-resolution grid). Values equal ``F.cross_entropy(resize(logits), labels)`` up to float
rounding.
"""

from __future__ import annotations

import torch

# Elements of one band of upsampled logits (classes × rows × width): 2^21 floats = 8 MB, small
# enough to stay in cache-sized chunks, large enough that the per-band Python overhead is noise.
BAND_ELEMENTS = 1 << 21


def bilinear_taps(
    in_size: int, out_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of 1-D bilinear resizing with ``align_corners=False``.

    Output ``o`` reads ``src = (o + 0.5) · in/out − 0.5`` clamped at 0 (PyTorch's and OpenCV's
    half-pixel convention): ``w0 · x[i0] + w1 · x[i1]`` with ``i0 = ⌊src⌋``,
    ``i1 = min(i0 + 1, in − 1)``, ``w1 = src − i0``, ``w0 = 1 − w1``.
    """
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(
        min=0
    )
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).clamp(0, 1)
    return i0, i1, 1 - w1, w1


class _ResizedCrossEntropy(torch.autograd.Function):
    """Per-pixel CE of bilinearly upsampled logits, band by band (see the module docstring)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, ignore_index: int):
        b, k, h, w = logits.shape
        out_h, out_w = labels.shape[-2:]
        rows_i0, rows_i1, rows_w0, rows_w1 = bilinear_taps(h, out_h, logits.device)
        cols = bilinear_taps(w, out_w, logits.device)
        valid = labels != ignore_index
        safe_labels = labels.masked_fill(~valid, 0)
        loss = logits.new_zeros(b, out_h, out_w)
        lse = logits.new_empty(b, out_h, out_w)
        band = max(1, BAND_ELEMENTS // (k * out_w))
        for i in range(b):
            wide = _resize_cols(logits[i], cols)  # (K, h, W): 1/8 of the full map at D8
            for r0 in range(0, out_h, band):
                r1 = min(r0 + band, out_h)
                up = _resize_rows(wide, rows_i0, rows_i1, rows_w0, rows_w1, r0, r1)
                lse[i, r0:r1] = torch.logsumexp(up, dim=0)
                picked = up.gather(0, safe_labels[i : i + 1, r0:r1]).squeeze(0)
                loss[i, r0:r1] = (lse[i, r0:r1] - picked).masked_fill_(~valid[i, r0:r1], 0)
        ctx.save_for_backward(logits, safe_labels, valid, lse)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        logits, safe_labels, valid, lse = ctx.saved_tensors
        b, k, h, w = logits.shape
        out_h, out_w = safe_labels.shape[-2:]
        rows_i0, rows_i1, rows_w0, rows_w1 = bilinear_taps(h, out_h, logits.device)
        cols = bilinear_taps(w, out_w, logits.device)
        grad_logits = torch.zeros_like(logits)
        scale = grad_loss * valid  # ignored pixels contribute nothing
        band = max(1, BAND_ELEMENTS // (k * out_w))
        for i in range(b):
            wide = _resize_cols(logits[i], cols)
            grad_wide = torch.zeros_like(wide)
            for r0 in range(0, out_h, band):
                r1 = min(r0 + band, out_h)
                up = _resize_rows(wide, rows_i0, rows_i1, rows_w0, rows_w1, r0, r1)
                # d(lse − x_label)/dx = softmax − one_hot(label), times the incoming gradient.
                grad_up = up.sub_(lse[i, r0:r1]).exp_()
                grad_up.scatter_add_(
                    0, safe_labels[i : i + 1, r0:r1], grad_up.new_full((1, r1 - r0, out_w), -1.0)
                )
                grad_up.mul_(scale[i, r0:r1])
                # Adjoint of the row interpolation: each output row sends w0/w1 of itself back.
                grad_wide.index_add_(1, rows_i0[r0:r1], grad_up * rows_w0[r0:r1, None])
                grad_wide.index_add_(1, rows_i1[r0:r1], grad_up.mul_(rows_w1[r0:r1, None]))
            col_i0, col_i1, col_w0, col_w1 = cols
            grad_logits[i].index_add_(2, col_i0, grad_wide * col_w0)
            grad_logits[i].index_add_(2, col_i1, grad_wide.mul_(col_w1))
        return grad_logits, None, None


def _resize_cols(
    x: torch.Tensor, cols: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Bilinear resize of the last dimension of ``x (K, h, w)`` → ``(K, h, W)``."""
    i0, i1, w0, w1 = cols
    return x.index_select(2, i0) * w0 + x.index_select(2, i1) * w1


def _resize_rows(
    wide: torch.Tensor,
    i0: torch.Tensor,
    i1: torch.Tensor,
    w0: torch.Tensor,
    w1: torch.Tensor,
    r0: int,
    r1: int,
) -> torch.Tensor:
    """Output rows ``r0:r1`` of the bilinear resize of dimension 1 of ``wide (K, h, W)``."""
    top = wide.index_select(1, i0[r0:r1]).mul_(w0[r0:r1, None])
    return top.add_(wide.index_select(1, i1[r0:r1]).mul_(w1[r0:r1, None]))


def resized_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255
) -> torch.Tensor:
    """Per-pixel cross-entropy of ``logits (B, K, h, w)`` bilinearly resized (``align_corners=False``)
    to ``labels (B, H, W)``; ``0`` at ``ignore_index`` pixels. Equals
    ``F.cross_entropy(resize(logits, labels.shape[-2:]).float(), labels, ignore_index=...,
    reduction="none")`` up to float rounding, without the ``(B, K, H, W)`` tensors.

    Computed in float32 (as the reference's ``.float()``); labels must be class indices or
    ``ignore_index``.
    """
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"resized_cross_entropy: expected logits (B, K, h, w) and labels (B, H, W), got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    num_classes = logits.shape[1]
    labels = labels.long()
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        values = labels[bad].unique()[:10].tolist()
        raise ValueError(
            f"resized_cross_entropy: label values {values} are neither a class index "
            f"(0..{num_classes - 1}) nor ignore_index {ignore_index}"
        )
    with torch.autocast(logits.device.type, enabled=False):
        return _ResizedCrossEntropy.apply(logits.float(), labels, ignore_index)
