"""Cross-entropy on logits upsampled to the label size, without materialising the upsampled logits.

The mmseg loss upsamples every head's ``(B, K, h, w)`` logits bilinearly (the head's
``align_corners``: ``False`` but in mmseg's Cityscapes 769×769 configs) to the label size ``(H, W)`` (8× per side for the D8 networks) before a per-pixel cross-entropy.
Done literally, autograd keeps the ``(B, K, H, W)`` log-softmax for backward and builds three more
tensors of that size in backward — at ADE20K size (150 classes, 2×512²) 315 MB each, per head.

:func:`resized_cross_entropy` computes the same per-pixel losses band by band (a few output rows
of one image at a time): the band of upsampled logits is built, reduced to ``logsumexp − logit of
the label`` and dropped. Only the low-resolution logits, the labels and the per-pixel
``logsumexp`` ``(B, H, W)`` are kept; backward rebuilds each band, forms
``softmax − one_hot`` and applies the adjoint of the bilinear interpolation. Both resizes are
small matrix multiplies with the interpolation matrices (two taps per row; a band reads only the
few low-resolution rows it depends on), which BLAS does faster than gathers and index-adds: the
loss of one head at 2×512² with 150 classes takes about 0.3 s here against 0.7 s for the literal
``F.interpolate`` + ``F.cross_entropy``. Values equal ``F.cross_entropy(resize(logits), labels)``
up to float rounding.
"""

from __future__ import annotations

import torch

# Elements of one band of upsampled logits (classes × rows × width): 2^21 floats = 8 MB, small
# enough to stay in cache-sized chunks, large enough that the per-band Python overhead is noise.
BAND_ELEMENTS = 1 << 21


def bilinear_taps(
    in_size: int, out_size: int, device: torch.device, align_corners: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of 1-D bilinear resizing (``F.interpolate``'s conventions).

    ``align_corners=False``: output ``o`` reads ``src = (o + 0.5) · in/out − 0.5`` clamped at 0
    (PyTorch's and OpenCV's half-pixel convention); ``True``: ``src = o · (in − 1)/(out − 1)``
    (the corner pixels coincide). Then ``w0 · x[i0] + w1 · x[i1]`` with ``i0 = ⌊src⌋``,
    ``i1 = min(i0 + 1, in − 1)``, ``w1 = src − i0``, ``w0 = 1 − w1``.
    """
    positions = torch.arange(out_size, device=device, dtype=torch.float32)
    if align_corners:
        src = positions * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    else:
        src = ((positions + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).clamp(0, 1)
    return i0, i1, 1 - w1, w1


def interpolation_matrix(
    in_size: int, out_size: int, device: torch.device, align_corners: bool = False
) -> torch.Tensor:
    """``(out, in)`` matrix of 1-D bilinear resizing (:func:`bilinear_taps`): row ``o`` holds
    ``w0`` at ``i0`` and ``w1`` at ``i1``, so ``M @ x`` resizes ``x`` along its first dimension.
    Two taps per row — as a dense matrix the resize becomes one large matrix multiply (BLAS),
    much faster on CPU than gathering rows, and its adjoint is just ``Mᵀ``."""
    i0, i1, w0, w1 = bilinear_taps(in_size, out_size, device, align_corners)
    matrix = torch.zeros(out_size, in_size, device=device)
    rows = torch.arange(out_size, device=device)
    matrix.index_put_((rows, i0), w0, accumulate=True)
    matrix.index_put_((rows, i1), w1, accumulate=True)
    return matrix


class _ResizedCrossEntropy(torch.autograd.Function):
    """Per-pixel CE of bilinearly upsampled logits, band by band (see the module docstring).

    With ``R`` (``H×h``) and ``C`` (``W×w``) the interpolation matrices, image ``i``'s upsampled
    logits are ``R · X_k · Cᵀ`` per class ``k``. The column resize ``X · Cᵀ`` ("wide", 1/8 of the
    full map at D8) is made once per image in a ``(h, K·W)`` layout, so each band of output rows is
    one matrix multiply ``R[band] · wide`` ``(rows, K·W)``; backward accumulates ``R[band]ᵀ · grad``
    into the wide gradient and applies ``C`` once.
    """

    @staticmethod
    def forward(
        ctx, logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, align_corners: bool
    ):
        b, k, h, w = logits.shape
        out_h, out_w = labels.shape[-2:]
        rows = interpolation_matrix(h, out_h, logits.device, align_corners)
        cols = interpolation_matrix(w, out_w, logits.device, align_corners)
        valid = labels != ignore_index
        safe_labels = labels.masked_fill(~valid, 0)
        loss = logits.new_zeros(b, out_h, out_w)
        lse = logits.new_empty(b, out_h, out_w)
        band = max(1, BAND_ELEMENTS // (k * out_w))
        bands = row_bands(h, out_h, band, logits.device, align_corners)
        for i in range(b):
            wide = _wide(logits[i], cols)  # (h, K·W)
            for r0, r1, s0, s1 in bands:
                up = (rows[r0:r1, s0:s1] @ wide[s0:s1]).view(r1 - r0, k, out_w)
                lse[i, r0:r1] = torch.logsumexp(up, dim=1)
                picked = up.gather(1, safe_labels[i, r0:r1, None]).squeeze(1)
                loss[i, r0:r1] = (lse[i, r0:r1] - picked).masked_fill_(~valid[i, r0:r1], 0)
        ctx.save_for_backward(logits, safe_labels, valid, lse)
        ctx.align_corners = align_corners
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        logits, safe_labels, valid, lse = ctx.saved_tensors
        b, k, h, w = logits.shape
        out_h, out_w = safe_labels.shape[-2:]
        align_corners = ctx.align_corners
        rows = interpolation_matrix(h, out_h, logits.device, align_corners)
        cols = interpolation_matrix(w, out_w, logits.device, align_corners)
        grad_logits = torch.empty_like(logits)
        scale = grad_loss * valid  # ignored pixels contribute nothing
        band = max(1, BAND_ELEMENTS // (k * out_w))
        bands = row_bands(h, out_h, band, logits.device, align_corners)
        for i in range(b):
            wide = _wide(logits[i], cols)
            grad_wide = torch.zeros_like(wide)
            for r0, r1, s0, s1 in bands:
                up = (rows[r0:r1, s0:s1] @ wide[s0:s1]).view(r1 - r0, k, out_w)
                # d(lse − x_label)/dx = softmax − one_hot(label), times the incoming gradient.
                grad_up = up.sub_(lse[i, r0:r1, None]).exp_()
                grad_up.scatter_add_(
                    1, safe_labels[i, r0:r1, None], grad_up.new_full((r1 - r0, 1, out_w), -1.0)
                )
                grad_up.mul_(scale[i, r0:r1, None])
                # Adjoint of the row resize: each output row sends w0/w1 of itself back.
                grad_wide[s0:s1].addmm_(rows[r0:r1, s0:s1].t(), grad_up.view(r1 - r0, -1))
            # Adjoint of the column resize, back to (K, h, w).
            grad_logits[i] = (grad_wide.view(h, k, out_w) @ cols).permute(1, 0, 2)
        return grad_logits, None, None, None


def row_bands(
    in_size: int, out_size: int, band: int, device: torch.device, align_corners: bool = False
) -> list[tuple[int, int, int, int]]:
    """Output row bands ``(r0, r1)`` of ``band`` rows with the source rows ``(s0, s1)`` they read,
    so each band multiplies only the few low-resolution rows it depends on."""
    i0, i1, _, _ = bilinear_taps(in_size, out_size, device, align_corners)
    out = []
    for r0 in range(0, out_size, band):
        r1 = min(r0 + band, out_size)
        out.append((r0, r1, int(i0[r0:r1].min()), int(i1[r0:r1].max()) + 1))
    return out


def _wide(x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Column resize of ``x (K, h, w)`` by ``cols (W, w)``, laid out ``(h, K·W)``."""
    return (x.permute(1, 0, 2) @ cols.t()).reshape(x.shape[1], -1)


def resized_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = 255,
    align_corners: bool = False,
) -> torch.Tensor:
    """Per-pixel cross-entropy of ``logits (B, K, h, w)`` bilinearly resized to
    ``labels (B, H, W)``; ``0`` at ``ignore_index`` pixels. Equals
    ``F.cross_entropy(F.interpolate(logits, labels.shape[-2:], mode="bilinear",
    align_corners=align_corners).float(), labels, ignore_index=..., reduction="none")`` up to
    float rounding, without the ``(B, K, H, W)`` tensors.

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
        return _ResizedCrossEntropy.apply(logits.float(), labels, ignore_index, align_corners)
