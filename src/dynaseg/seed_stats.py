"""Statistics over seeds for the ablation tables: t intervals, paired differences, Holm.

A table cell holds one value per seed (its runs' final mIoU). The tables report

- per cell the mean and its 95 % confidence interval, Student's t with n − 1 degrees of freedom
  over the n seeds (``mean ± t_{0.975, n−1} · s / √n``);
- per compared pair of cells the difference paired by seed (the seed fixes initialisation and the
  data stream, so both arms of a pair saw the same batches): the mean of ``a_s − b_s`` over the
  seeds both cells ran, with the paired t test's two-sided p value and t interval;
- across a table's family of comparisons, Holm's step-down adjustment (Holm, "A Simple
  Sequentially Rejective Multiple Test Procedure", Scand. J. Statistics 6(2), 1979): sort the m
  p values ascending, ``p̃_(k) = max_{j ≤ k} min(1, (m − j + 1) · p_(j))``; a comparison is
  *resolved* when ``p̃ < α``.

Rules that keep a verdict and its interval from disagreeing (docs/ablations.md, "Evidence
round 2: protocol"):

- **Interval level.** With r of the m comparisons resolved, a resolved one at position k is shown
  at its step's level ``1 − α / (m − k + 1)`` (it excludes 0: ``p_(k) < α / (m − k + 1)``), every
  unresolved one at ``1 − α / (m − r)``, the level of the step where the procedure stopped (it
  contains 0: ``p ≥ p_(r+1) ≥ α / (m − r)``). Showing each at its own position's level instead
  lets an interval exclude 0 on a row that reads unresolved (p = 0.03, 0.04: the second row's
  95 % interval excludes 0 while ``p̃ = 0.06``; here both are shown at 97.5 %).
- **Ties.** Tied p values have equal ``p̃``; a resolved tie is shown at the level of the first
  position of the tie, so no level depends on the order of the rows.
- **Zero spread.** When the n ≥ 2 paired differences are all equal, the t statistic is undefined
  (not infinite evidence: two identical differences at n = 2 prove nothing): ``p`` is ``None``,
  the comparison is left out of its family and reads unresolved, without an interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy import stats as scipy_stats

ALPHA = 0.05
# an sd at or below this × max(1, |mean|) is a zero spread (equal differences up to rounding)
ZERO_SD = 1e-12


def t_halfwidth(sd: float, n: int, level: float = 1 - ALPHA) -> float | None:
    """Half-width of the two-sided t interval of a mean of ``n`` values with sample std ``sd``."""
    if n < 2:
        return None
    return float(scipy_stats.t.ppf(1 - (1 - level) / 2, n - 1)) * sd / math.sqrt(n)


def mean_interval(values: Sequence[float], level: float = 1 - ALPHA) -> tuple[float, float | None]:
    """``(mean, half-width)`` of the t interval; half-width ``None`` for fewer than 2 values."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, t_halfwidth(statistics.stdev(values), len(values), level)


@dataclass
class PairedDifference:
    """``a − b`` paired by seed over the seeds both sides have."""

    seeds: list[str]
    differences: list[float]
    p: float | None = None  # two-sided paired t test; None below 2 pairs
    adjusted_p: float | None = None  # Holm, within the comparison's family
    level: float = 1 - ALPHA  # confidence level of the interval shown

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.differences) if self.differences else None

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.differences) if self.n > 1 else None

    @property
    def zero_spread(self) -> bool:
        """All n ≥ 2 differences equal: no t test, no interval (module docstring)."""
        return self.sd is not None and self.sd <= ZERO_SD * max(1.0, abs(self.mean or 0.0))

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.n < 2 or self.mean is None or self.sd is None or self.zero_spread:
            return None
        half = t_halfwidth(self.sd, self.n, self.level) or 0.0
        return self.mean - half, self.mean + half

    @property
    def resolved(self) -> bool:
        """The Holm-adjusted test rejects "no difference" at :data:`ALPHA`."""
        return self.adjusted_p is not None and self.adjusted_p < ALPHA


def paired_difference(a: Mapping[str, float], b: Mapping[str, float]) -> PairedDifference:
    """``a − b`` over the seeds in both (``{seed: value}``, in ``a``'s order)."""
    seeds = [s for s in a if s in b]
    diff = PairedDifference(seeds, [a[s] - b[s] for s in seeds])
    if diff.n >= 2 and not diff.zero_spread:  # zero spread: p undefined (module docstring)
        t = (diff.mean or 0.0) / ((diff.sd or 0.0) / math.sqrt(diff.n))
        diff.p = float(2 * scipy_stats.t.sf(abs(t), diff.n - 1))
    return diff


def holm(p_values: Sequence[float | None]) -> tuple[list[float | None], list[float | None]]:
    """Holm-adjusted p values and the confidence level of each comparison's interval.

    Levels by the module docstring's rule: a resolved comparison at its (first tied) step's
    ``1 − α/(m − k + 1)``, an unresolved one at ``1 − α/(m − r)`` (r resolved), so an interval
    excludes 0 exactly when its comparison is resolved. ``None`` entries (too few pairs, zero
    spread) are left out of the family and stay ``None``.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(order)
    adjusted: list[float | None] = [None] * len(p_values)
    levels: list[float | None] = [None] * len(p_values)
    running = 0.0
    first_of_tie = 0
    steps = []  # (index, Holm-adjusted p, 0-based position of the first p equal to this one)
    for k, (p, i) in enumerate(order):
        if k == 0 or p != order[k - 1][0]:
            first_of_tie = k
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
        steps.append((i, running, first_of_tie))
    resolved = sum(1 for _, p_holm, _ in steps if p_holm < ALPHA)
    for i, p_holm, first in steps:
        levels[i] = 1 - ALPHA / (m - first if p_holm < ALPHA else m - resolved)
    return adjusted, levels


def adjust_family(family: Sequence[PairedDifference]) -> None:
    """Holm-adjust a table's comparisons in place (their p values and interval levels)."""
    adjusted, levels = holm([d.p for d in family])
    for diff, p, level in zip(family, adjusted, levels, strict=True):
        diff.adjusted_p = p
        diff.level = level if level is not None else 1 - ALPHA


@dataclass
class SeedValues:
    """The values of one cell, one per seed (several runs of one seed are averaged and
    reported as duplicates: they are not independent evidence)."""

    by_seed: dict[str, list[float]] = field(default_factory=dict)

    def add(self, seed: str, value: float) -> None:
        self.by_seed.setdefault(seed, []).append(value)

    @property
    def per_seed(self) -> dict[str, float]:
        return {s: statistics.fmean(v) for s, v in self.by_seed.items()}

    @property
    def duplicates(self) -> dict[str, int]:
        return {s: len(v) for s, v in self.by_seed.items() if len(v) > 1}
