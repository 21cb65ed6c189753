"""The statistics a paper table declares (``paper_tables.yaml``): each cell minus its reference
cell (``reference``, ``contrasts``) and the paper's orderings ``A > B`` (``orderings``), each a
difference paired by seed (:mod:`dynaseg.reporting.seed_stats`), Holm-adjusted per family.

Cells are addressed as ``ROW``, ``@ COLUMN`` or ``ROW @ COLUMN``; a side ``P - Q`` of an ordering
is the difference of two cells (an interaction)."""

from __future__ import annotations

from collections.abc import Sequence

from dynaseg.errors import ConfigError
from dynaseg.reporting.cells import Comparison, PaperTable
from dynaseg.reporting.seed_stats import adjust_family, differences_by_seed, paired_difference


def _plain_row(table: PaperTable, r: int) -> bool:
    """Rows of the table's own metric (not e.g. a parameter-count row) enter the statistics."""
    return not table.spec["rows"][r].get("metric") and not table.spec["rows"][r].get("note")


def _address(table: PaperTable, text: str, key: str) -> tuple[int | None, int | None]:
    """``ROW``, ``@ COLUMN`` or ``ROW @ COLUMN`` → (row index or None, column index or None)."""
    row_text, sep, col_text = str(text).partition(" @ ")
    if not sep and str(text).startswith("@ "):
        row_text, col_text = "", str(text)[2:]
    row_text, col_text = row_text.strip(), col_text.strip()
    where = f"paper_tables.yaml, {table.name}.{key}: {text!r}"
    if row_text and row_text not in table.row_labels:
        raise ConfigError(f"{where}: no row {row_text!r} (rows: {'; '.join(table.row_labels)})")
    if col_text and col_text not in table.col_labels:
        raise ConfigError(
            f"{where}: no column {col_text!r} (columns: {'; '.join(table.col_labels)})"
        )
    if not row_text and not col_text:
        raise ConfigError(f"{where}: expected ROW, '@ COLUMN' or 'ROW @ COLUMN'")
    r = table.row_labels.index(row_text) if row_text else None
    c = table.col_labels.index(col_text) if col_text else None
    return r, c


def _usable(table: PaperTable, r: int, c: int) -> bool:
    return _plain_row(table, r) and table.cells[r][c].applicable


def _side_values(table: PaperTable, side: Sequence[tuple[int, int]]) -> dict[str, float]:
    """A cell's values by seed, or (two cells) the first minus the second, paired by seed."""
    first = table.cells[side[0][0]][side[0][1]].per_seed
    if len(side) == 1:
        return first
    return differences_by_seed(first, table.cells[side[1][0]][side[1][1]].per_seed)


def _paper_has_axis(table: PaperTable, columns: set[int]) -> bool:
    """Whether the paper's numbers differ between these columns in some row (columns that only
    repeat them, like the miniature's with/without-zoom pair, are not an axis of the paper)."""
    return len(columns) < 2 or any(
        len({table.cells[r][c].paper for c in columns}) > 1 for r in range(len(table.row_labels))
    )


def _side_paper(table: PaperTable, side: Sequence[tuple[int, int]]) -> float | None:
    numbers = [table.cells[r][c].paper for r, c in side]
    if any(n is None for n in numbers):
        return None
    return numbers[0] if len(numbers) == 1 else numbers[0] - numbers[1]


def _side_label(table: PaperTable, side: Sequence[tuple[int, int]]) -> str:
    labels = [table.label(*cell) for cell in side]
    return labels[0] if len(labels) == 1 else f"({labels[0]} − {labels[1]})"


def _compare(
    table: PaperTable, high: Sequence[tuple[int, int]], low: Sequence[tuple[int, int]]
) -> Comparison:
    """``high − low`` paired by seed; a side is one cell or the difference of two cells (an
    interaction: ``(A − B) − (C − D)``)."""
    paper_high, paper_low = _side_paper(table, high), _side_paper(table, low)
    paper = paper_high - paper_low if paper_high is not None and paper_low is not None else None
    if len(high) == 2 and not _paper_has_axis(table, {c for _, c in [*high, *low]}):
        paper = None  # e.g. the miniature's zoom columns repeat one paper number: no paper Δ
    diff = paired_difference(_side_values(table, high), _side_values(table, low))
    ran = all(table.cells[r][c].values for r, c in [*high, *low])
    label_high, label_low = _side_label(table, high), _side_label(table, low)
    return Comparison(high[0], low[0], label_high, label_low, diff, paper, ran)


def reference_contrasts(table: PaperTable) -> list[Comparison]:
    """Each compared cell minus its reference cell (``reference:`` of the spec), Holm-adjusted
    across the table."""
    reference = table.spec.get("reference")
    if not reference:
        return []
    ref_r, ref_c = _address(table, reference, "reference")
    chosen: set[tuple[int, int]] | None = None
    if table.spec.get("contrasts"):
        chosen = set()
        for i, text in enumerate(table.spec["contrasts"]):
            r, c = _address(table, text, f"contrasts[{i}]")
            chosen |= {
                (rr, cc)
                for rr in ([r] if r is not None else range(len(table.row_labels)))
                for cc in ([c] if c is not None else range(len(table.col_labels)))
            }
    out = []
    for r in range(len(table.row_labels)):
        for c in range(len(table.col_labels)):
            ref = (ref_r if ref_r is not None else r, ref_c if ref_c is not None else c)
            if ref == (r, c) or (chosen is not None and (r, c) not in chosen):
                continue
            if _usable(table, r, c) and _usable(table, *ref):
                out.append(_compare(table, [(r, c)], [ref]))
    adjust_family([x.diff for x in out])
    return out


def paper_orderings(table: PaperTable) -> list[Comparison]:
    """The paper's claims ``A > B`` (``orderings:`` of the spec), each a paired comparison;
    ``ROW > ROW`` holds in every column, ``@ COL > @ COL`` in every row; a side ``P - Q`` is the
    difference of two cells (``A - B > C - D``: an interaction). Holm across them."""
    out = []
    for i, text in enumerate(table.spec.get("orderings") or []):
        where = f"paper_tables.yaml, {table.name}.orderings[{i}]: {text!r}"
        high, sep, low = str(text).partition(" > ")
        if not sep:
            raise ConfigError(f"{where}: expected 'A > B' (or 'A - B > C - D')")
        sides = [
            [_address(table, x, f"orderings[{i}]") for x in part.split(" - ")]
            for part in (high, low)
        ]
        kinds = {(r is None, c is None) for side in sides for r, c in side}
        if len(kinds) > 1 or any(len(side) > 2 for side in sides):
            raise ConfigError(
                f"{where}: every term must name the same kind of thing (rows, '@ COLUMN's or "
                "'ROW @ COLUMN' cells), at most two per side"
            )
        no_row, no_col = kinds.pop()
        if no_row:
            expand = [
                [[(r, c) for _, c in side] for side in sides] for r in range(len(table.row_labels))
            ]
        elif no_col:
            expand = [
                [[(r, c) for r, _ in side] for side in sides] for c in range(len(table.col_labels))
            ]
        else:
            expand = [sides]
        for hi, lo in expand:
            if all(_usable(table, r, c) for r, c in [*hi, *lo]):
                out.append(_compare(table, hi, lo))
    adjust_family([x.diff for x in out])
    return out
