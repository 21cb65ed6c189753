"""The table builder behind ``scripts/make_table.py`` (:mod:`dynaseg.cli.make_table`): sweeps in,
tables or a doc's generated sections out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dynaseg.reporting.doc_sections import doc_section, update_doc
from dynaseg.reporting.paper_tables import paper_specs
from dynaseg.reporting.rendering import render
from dynaseg.reporting.sweeps import Sweep, load_sweep


def make_table(
    sweep_dirs: Sequence[str | Path],
    paper: str | None = None,
    fmt: str = "markdown",
    runs: bool = True,
    metric: Sequence[str] | None = None,
    class_groups: dict[str, Any] | None = None,
    doc: Path | None = None,
    view: Callable[[Sweep], Sweep] | None = None,
    view_name: str | None = None,
    checkpoint: str = "last",
) -> str:
    """The table(s) of the sweeps ``sweep_dirs`` as text
    (:func:`~dynaseg.reporting.rendering.render`) of ``checkpoint``'s scores (``last``, the
    papers' practice, or ``best`` on validation); with ``doc``, one section per argument written
    into that file's generated block instead (``A+B:3`` joins sweeps; ``TABLE=A+B`` sets that
    section's layout), and the line saying so. ``view`` turns each loaded sweep into the one
    tabulated (e.g. its runs at an earlier step, or paired by backbone: the commands of
    :mod:`dynaseg.cli.make_table` give these), ``view_name`` says which in a doc section's
    heading."""

    def load(dirs: Sequence[str | Path]) -> Sweep:
        sweep = load_sweep(dirs)
        return view(sweep) if view is not None else sweep

    if doc is None:
        return render(load(sweep_dirs), paper, fmt, runs, metric, class_groups, checkpoint)
    sections = []
    for arg in map(str, sweep_dirs):
        # TABLE=A+B: this section's layout (several tables in one --doc call)
        name, sep, dirs = arg.partition("=")
        section_paper = name if sep and name in paper_specs() else paper
        dirs = dirs if sep and name in paper_specs() else arg
        sweep = load(dirs.split("+"))
        sections.append(
            doc_section(sweep, section_paper, None, metric, class_groups, view_name, checkpoint)
        )
    update_doc(doc, sections)
    return f"wrote {len(sections)} section(s) to {doc}"
