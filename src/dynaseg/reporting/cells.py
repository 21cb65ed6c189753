"""A paper table laid out: its cells (our runs, one value per seed, beside the paper's number),
the paired comparisons between cells, and the :class:`PaperTable` holding both (built by
:func:`dynaseg.reporting.paper_tables.build_paper_table`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynaseg.reporting.seed_stats import PairedDifference, SeedSample, SeedValues
from dynaseg.reporting.sweeps import JobRecord


@dataclass
class Cell(SeedSample):
    """One cell: our completed runs (one value per seed), what went wrong, the paper's number."""

    runs: SeedValues = field(default_factory=SeedValues)
    jobs: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)  # one per completed run
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)  # failed/missing, re-run elsewhere
    unscored: list[str] = field(default_factory=list)  # completed, no score of the checkpoint
    paper: float | None = None
    applicable: bool = True
    expected_seeds: int = 1
    other_commits: list[str] = field(default_factory=list)  # not the table's main commit

    @property
    def per_seed(self) -> dict[str, float]:
        return self.runs.per_seed

    @property
    def values(self) -> list[float]:
        """One value per seed."""
        return list(self.per_seed.values())

    @property
    def seeds(self) -> list[str]:
        return list(self.per_seed)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (the CSV's ``std``)."""
        return self.sd

    @property
    def ci(self) -> float | None:
        """Half-width of the 95 % t interval of the mean over seeds (``None`` below 2 seeds)."""
        return self.half_width()

    @property
    def flags(self) -> list[str]:
        out = []
        if self.failed:
            out.append(f"FAILED: job {', '.join(self.failed)}")
        if self.missing:
            out.append(f"MISSING: job {', '.join(self.missing)}")
        if self.unscored:
            out.append(f"no score of this checkpoint: job {', '.join(self.unscored)}")
        if self.values and self.n < self.expected_seeds:
            out.append(f"{self.n}/{self.expected_seeds} seeds" + (": no CI" if self.n == 1 else ""))
        elif self.n == 1:
            out.append("1 seed: no CI")
        for seed, count in self.runs.duplicates.items():
            out.append(f"seed {seed} run {count}x (averaged)")
        if self.other_commits:
            out.append(f"commit {', '.join(self.other_commits)}")
        return out


@dataclass
class Comparison:
    """Cell ``a`` minus cell ``b``, paired by seed (``a``/``b``: (row, column) indices)."""

    a: tuple[int, int]
    b: tuple[int, int]
    label_a: str
    label_b: str
    diff: PairedDifference
    paper: float | None = None  # the paper's a − b
    ran: bool = True  # both cells have runs

    @property
    def verdict(self) -> str:
        """For a paper ordering a > b: ``resolved-agree``, ``resolved-disagree``,
        ``unresolved`` (interval includes 0, or fewer than 2 paired seeds) or ``not run``
        (a cell without runs)."""
        if not self.ran:
            return "not run"
        if not self.diff.resolved:
            return "unresolved"
        return "resolved-agree" if (self.diff.mean or 0.0) > 0 else "resolved-disagree"


@dataclass
class PaperTable:
    name: str
    spec: dict[str, Any]
    row_labels: list[str]
    col_labels: list[str]
    cells: list[list[Cell]]
    unmatched: list[JobRecord]
    notes: dict[str, str]
    classes: list[str] | None = None  # a group metric: mIoU over these classes
    group: str | None = None  # the class group's name
    group_metric: str = "mIoU"  # what a class group's cells hold (paper_tables.GROUP_METRICS)
    contrasts: list[Comparison] = field(default_factory=list)
    orderings: list[Comparison] = field(default_factory=list)
    commit: str | None = None  # the commit most of the table's runs come from
    checkpoint: str = "last"  # whose scores the cells hold (sweeps.CHECKPOINTS)

    def label(self, r: int, c: int) -> str:
        if len(self.col_labels) == 1:
            return self.row_labels[r]
        return f"{self.row_labels[r]} @ {self.col_labels[c]}"
