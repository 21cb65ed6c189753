"""Learning-rate schedules defined in optimizer iterations (mmseg recipes say "80k iterations")."""

from __future__ import annotations

from collections.abc import Callable


def poly_lr_lambda(
    base_lr: float, total_iters: int, power: float = 0.9, min_lr: float = 1e-4
) -> Callable[[int], float]:
    """Multiplicative factor for ``LambdaLR`` giving mmseg's ``PolyLR``:
    ``lr(t) = (base_lr − min_lr)·(1 − t/T)^power + min_lr`` for ``t ≤ T`` (DMNet §4.1, power 0.9).
    """
    total_iters = max(1, int(total_iters))
    floor = min(min_lr, base_lr)

    def factor(step: int) -> float:
        progress = min(step, total_iters) / total_iters
        lr = (base_lr - floor) * (1.0 - progress) ** power + floor
        return lr / base_lr if base_lr > 0 else 0.0

    return factor
