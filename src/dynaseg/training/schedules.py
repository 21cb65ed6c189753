"""Learning-rate schedules defined in optimizer iterations (mmseg recipes say "80k iterations").

Each returns the multiplicative factor for ``torch.optim.lr_scheduler.LambdaLR``, stepped once per
optimizer step: the LR used by optimizer step ``t`` (0-based) is ``base_lr · factor(t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def poly_lr_lambda(
    base_lr: float, total_iters: int, power: float = 0.9, min_lr: float = 1e-4
) -> Callable[[int], float]:
    """Multiplicative factor for ``LambdaLR`` giving mmseg's ``PolyLR``:
    ``lr(t) = (base_lr − min_lr)·(1 − t/T)^power + min_lr`` for ``t ≤ T`` (DMNet §4.1, power 0.9).
    ``min_lr=0`` is the papers' formula ``lr = initial_lr·(1 − iter/total_iter)^power``.
    """
    total_iters = max(1, int(total_iters))
    floor = min(min_lr, base_lr)

    def factor(step: int) -> float:
        progress = min(step, total_iters) / total_iters
        lr = (base_lr - floor) * (1.0 - progress) ** power + floor
        return lr / base_lr if base_lr > 0 else 0.0

    return factor


def step_lr_lambda(milestones: Sequence[int], gamma: float = 0.1) -> Callable[[int], float]:
    """Step decay: the LR is multiplied by ``gamma`` at each milestone step (SAC, ICCV 2017 §4.1:
    "initialized at 0.0005 for 60 epochs and then divided by 10 for another 10 epochs").

    Steps ``0 … m−1`` run at the base LR, step ``m`` and later at ``gamma·base``, and so on.
    """
    bounds = sorted(int(m) for m in milestones)
    if any(m < 1 for m in bounds):
        raise ValueError(f"step schedule milestones must be >= 1 optimizer step, got {bounds}")

    def factor(step: int) -> float:
        return gamma ** sum(step >= m for m in bounds)

    return factor


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    """Optimizer steps after ``epochs`` epochs of ``steps_per_epoch`` steps (rounded to nearest, at
    least 1): how a paper's "N epochs" becomes a milestone in this step-based trainer."""
    if steps_per_epoch < 1 or not math.isfinite(steps_per_epoch):
        raise ValueError(f"steps_per_epoch must be a finite count >= 1, got {steps_per_epoch}")
    return max(1, round(epochs * steps_per_epoch))
