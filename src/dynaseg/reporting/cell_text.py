"""The text of a paper table's cells, differences, notes and summaries: what its markdown, LaTeX
and CSV renderings (:mod:`dynaseg.reporting.rendering`, :mod:`dynaseg.reporting.latex`) share."""

from __future__ import annotations

from dynaseg.reporting.cells import Cell, PaperTable
from dynaseg.reporting.seed_stats import PairedDifference


def number_text(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; empty for ``None``."""
    return "" if value is None else f"{value:.{digits}f}"


def signed_text(value: float | None, digits: int = 2) -> str:
    """``value`` with its sign and ``digits`` decimals; empty for ``None``."""
    return "" if value is None else f"{value:+.{digits}f}"


def format_cell(cell: Cell) -> str:
    """``mean ± CI half-width (n seeds) / paper`` plus flags; ``—`` where the paper has no cell."""
    if not cell.applicable:
        return "—"
    if cell.values:
        ours = number_text(cell.mean)
        if cell.ci is not None:
            ours += f" ± {number_text(cell.ci)}"
        if cell.n > 1:
            ours += f" (n={cell.n})"
    elif cell.failed or cell.missing:
        ours = "—"
    else:
        ours = "not run"
    text = ours + (f" / {number_text(cell.paper)}" if cell.paper is not None else "")
    if cell.flags:
        text += " **" + "; ".join(cell.flags) + "**"
    return text


def format_difference(diff: PairedDifference) -> str:
    """``+1.20 [+0.30, +2.10] (n=5, p_Holm=0.012) *``: the mark when resolved."""
    if diff.n == 0:
        return "no paired seeds"
    text = signed_text(diff.mean)
    interval = diff.interval
    if diff.zero_spread:  # equal differences: no t test (reporting.seed_stats)
        return f"{text} (n={diff.n}, sd = 0: not tested)"
    if interval is None:
        return f"{text} (n={diff.n}: no CI)"
    level = f"{100 * diff.level:.1f}".rstrip("0").rstrip(".")
    text += f" [{signed_text(interval[0])}, {signed_text(interval[1])}] ({level} % CI, n={diff.n}"
    text += f", p_Holm={diff.adjusted_p:.3g})" if diff.adjusted_p is not None else ")"
    return text + (" *" if diff.resolved else "")


CHECKPOINT_NOTES = {
    "last": "each run's last checkpoint, the weights at the end of fitting (the papers' practice; "
    "--checkpoint best reads the best on validation mIoU)",
    "best": "each run's best checkpoint on validation mIoU: its validation mIoU "
    "(reported_checkpoint.best), its test scores where the run tested it (test_checkpoint=best)",
}


def checkpoint_note(checkpoint: str) -> str:
    """The line under a table saying whose scores it holds (``--checkpoint``)."""
    return f"Checkpoint: {checkpoint} — {CHECKPOINT_NOTES[checkpoint]}."


def metric_title(table: PaperTable) -> str:
    if table.classes is None:
        return table.spec.get("title", table.name)
    title = table.spec.get("title", table.name)
    if table.group_metric == "pair accuracy":
        a, b = table.classes
        return (
            f"{title} — {table.group or 'pair'}: pair accuracy of {a} vs {b} (of the pixels "
            f"labelled {a} or {b} and predicted {a} or {b}, the share predicted as their own "
            "class; the pair confusion is 100 − this), %"
        )
    group = f"{table.group} classes" if table.group else "classes"
    return f"{title} — mIoU over {group} ({', '.join(table.classes)}), %"


STATS_NOTE = (
    "mean ± half-width of the 95 % t interval over seeds (n = seeds; several runs of one seed "
    "are averaged and flagged)"
)
LEVEL_NOTE = (
    "a resolved row's interval is at its Holm step's level, an unresolved row's at the level of "
    "the step where Holm stopped, so an interval excludes 0 exactly when its row is resolved"
)
DIFF_NOTE = (
    "Δ = cell − reference paired by seed (α = 0.05, Holm across the table's comparisons); "
    f"{LEVEL_NOTE}; * = resolved (Holm-adjusted p < 0.05)"
)


def ordering_counts(table: PaperTable) -> dict[str, int]:
    verdicts = [o.verdict for o in table.orderings]
    kinds = ("resolved-agree", "resolved-disagree", "unresolved", "not run")
    return {k: verdicts.count(k) for k in kinds}


def ordering_summary(table: PaperTable) -> str:
    """The paper's declared orderings by verdict (never a bare "k of n pairs")."""
    if not table.orderings:
        return ""
    counts = ordering_counts(table)
    on = f" on the {table.group} classes" if table.group else ""
    if table.group_metric != "mIoU":
        on = f" on the {table.group or ', '.join(table.classes or [])} ({table.group_metric})"
    family = " (their own Holm family)" if table.classes is not None else ""
    return (
        f"Paper orderings{on} ({len(table.orderings)} declared): "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f". Resolved = the paired difference's Holm-adjusted p < 0.05 across these "
        f"orderings{family}; {LEVEL_NOTE}."
    )


CONTRAST_HEADER = ["cell", "reference", "Δ (points)", "paper Δ"]
ORDERING_HEADER = ["paper ordering", "paper Δ", "ours Δ (points)", "verdict"]


def contrast_rows(table: PaperTable) -> list[list[str]]:
    """The compared cells that ran (a cell without runs has nothing to show)."""
    return [
        [x.label_a, x.label_b, format_difference(x.diff), signed_text(x.paper)]
        for x in table.contrasts
        if table.cells[x.a[0]][x.a[1]].values
    ]


def ordering_rows(table: PaperTable) -> list[list[str]]:
    return [
        [f"{x.label_a} > {x.label_b}", signed_text(x.paper), format_difference(x.diff), x.verdict]
        for x in table.orderings
    ]


def cell_rows(table: PaperTable) -> list[list[str]]:
    """The table's header line and rows of formatted cells (a ``note:`` row shows its note)."""
    rows = [[table.spec.get("corner", "")] + table.col_labels]
    for label, line in zip(table.row_labels, table.cells, strict=True):
        note = table.notes.get(label)
        rows.append([label] + [note if note else format_cell(c) for c in line])
    return rows


def cells_caption(table: PaperTable) -> str:
    source = f" / paper ({table.spec.get('source', '')})" if table.classes is None else ""
    return f"cells: ours, {STATS_NOTE}{source}."
