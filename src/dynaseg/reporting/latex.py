"""A paper table as LaTeX: booktabs tables (``\\usepackage{booktabs}``) of the same content as
the markdown: cells, differences to the reference, the paper's orderings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dynaseg.reporting.cell_text import (
    CONTRAST_HEADER,
    DIFF_NOTE,
    ORDERING_HEADER,
    cell_rows,
    cells_caption,
    checkpoint_note,
    contrast_rows,
    metric_title,
    ordering_rows,
    ordering_summary,
)
from dynaseg.reporting.cells import PaperTable

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_TEXT = {
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "α": r"$\alpha$",
    "−": r"$-$",
    "—": "---",
    "≥": r"$\geq$",
    "×": r"$\times$",
}


def latex_escape(value: Any) -> str:
    """``value`` as LaTeX text: special characters escaped, line breaks collapsed, markdown bold
    (``**flags**``) as ``\textbf``."""
    text = " ".join(str(value).split())
    parts = [
        "".join(_LATEX_SPECIAL.get(ch, _LATEX_TEXT.get(ch, ch)) for ch in part)
        for part in text.split("**")
    ]
    return "".join(rf"\textbf{{{p}}}" if i % 2 and p else p for i, p in enumerate(parts))


def _latex_tabular(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(map(latex_escape, header)) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(map(latex_escape, r)) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def paper_table_latex(table: PaperTable) -> str:
    header, *rows = cell_rows(table)
    caption = f"{metric_title(table)}: {cells_caption(table)} {checkpoint_note(table.checkpoint)}"
    parts = [_latex_tabular(header, rows, caption)]
    title = metric_title(table)
    if table.contrasts:
        caption = f"{title}: differences to the reference. {DIFF_NOTE}."
        parts.append(_latex_tabular(CONTRAST_HEADER, contrast_rows(table), caption))
    if table.orderings:
        caption = f"{title}: {ordering_summary(table)}"
        parts.append(_latex_tabular(ORDERING_HEADER, ordering_rows(table), caption))
    return "\n\n".join(parts)
