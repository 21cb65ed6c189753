"""A sweep as text: its paper tables (markdown, CSV, LaTeX via :mod:`dynaseg.reporting.latex`)
and the flat list of its jobs (status, varying overrides, metric, steps, timings, error), under
the flag of runs from several CPU/library setups (:mod:`dynaseg.reporting.hardware`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from dynaseg.errors import ConfigError
from dynaseg.reporting.cell_text import (
    CONTRAST_HEADER,
    DIFF_NOTE,
    ORDERING_HEADER,
    cell_rows,
    cells_caption,
    checkpoint_note,
    contrast_rows,
    metric_title,
    number_text,
    ordering_rows,
    ordering_summary,
)
from dynaseg.reporting.cells import PaperTable
from dynaseg.reporting.hardware import sweep_hardware_flag
from dynaseg.reporting.latex import paper_table_latex
from dynaseg.reporting.paper_tables import build_tables, find_spec
from dynaseg.reporting.sweeps import CHECKPOINTS, DEFAULT_METRIC, JobRecord, Sweep


def markdown_cell(value: Any) -> str:
    """``value`` as the text of one markdown table cell: pipes escaped, line breaks collapsed
    (an error message spanning lines would otherwise end the table row)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(map(markdown_cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(markdown_cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def paper_table_markdown(table: PaperTable) -> str:
    header, *rows = cell_rows(table)
    text = [f"**{metric_title(table)}** — {cells_caption(table)}", "", _markdown(header, rows)]
    text += ["", checkpoint_note(table.checkpoint)]
    if table.unmatched:
        text += [
            "",
            "Runs outside the paper's layout: "
            + "; ".join(
                f"job {j.job} ({j.status}: {' '.join(j.overrides)})" for j in table.unmatched
            ),
        ]
    not_run = [f"{c['label']}: {c['note']}" for c in table.spec["columns"] if c.get("note")]
    if not_run:
        text += ["", "Columns not run (paper numbers in the CSV): " + "; ".join(not_run)]
    if table.contrasts:
        text += ["", f"Differences to the reference. {DIFF_NOTE}.", ""]
        text.append(_markdown(CONTRAST_HEADER, contrast_rows(table)))
    if table.orderings:
        text += ["", ordering_summary(table), "", _markdown(ORDERING_HEADER, ordering_rows(table))]
    if table.commit and any(c.other_commits for line in table.cells for c in line):
        text += ["", f"Most runs come from commit {table.commit}; flagged cells from others."]
    return "\n".join(text)


def paper_table_rows(table: PaperTable) -> list[dict[str, Any]]:
    """One CSV row per cell (with its difference to the reference, if compared)."""
    contrast = {x.a: x for x in table.contrasts}
    col_notes = {c["label"]: c["note"] for c in table.spec["columns"] if c.get("note")}
    out = []
    for r, (label, line) in enumerate(zip(table.row_labels, table.cells, strict=True)):
        for c, (col, cell) in enumerate(zip(table.col_labels, line, strict=True)):
            x = contrast.get((r, c))
            interval = x.diff.interval if x else None
            out.append(
                {
                    "table": table.name,
                    "metric": (
                        "mIoU"
                        if table.classes is None
                        else f"{table.group_metric} over {table.group}"
                    ),
                    "classes": " ".join(table.classes or []),
                    "row": label,
                    "column": col,
                    "applicable": cell.applicable,
                    "n": cell.n,
                    "expected_seeds": cell.expected_seeds,
                    "mean": number_text(cell.mean, 4),
                    "std": number_text(cell.std, 4),
                    "ci95": number_text(cell.ci, 4),
                    "values": " ".join(number_text(v, 4) for v in cell.values),
                    "seeds": " ".join(cell.seeds),
                    "jobs": " ".join(cell.jobs),
                    "commits": " ".join(sorted(set(cell.commits))),
                    "paper": "" if cell.paper is None else cell.paper,
                    "reference": x.label_b if x else "",
                    "diff": number_text(x.diff.mean, 4) if x else "",
                    "diff_low": number_text(interval[0], 4) if interval else "",
                    "diff_high": number_text(interval[1], 4) if interval else "",
                    "diff_level": number_text(x.diff.level, 6) if x else "",
                    "p_holm": number_text(x.diff.adjusted_p, 6) if x else "",
                    "resolved": x.diff.resolved if x else "",
                    "flags": "; ".join(cell.flags)
                    or table.notes.get(label, "")
                    or col_notes.get(col, ""),
                    "superseded_jobs": " ".join(cell.superseded),
                    "checkpoint": table.checkpoint,
                }
            )
    return out


# The flat job list (printed after every sweep)


def _varying(jobs: Sequence[JobRecord]) -> list[list[str]]:
    """Each job's overrides without those every job shares (e.g. ``experiment=...``)."""
    common = set.intersection(*(set(j.overrides) for j in jobs)) if jobs else set()
    return [[o for o in j.overrides if o not in common] for j in jobs]


def runs_rows(
    sweep: Sweep, metric: Sequence[str] = DEFAULT_METRIC, checkpoint: str = "last"
) -> list[dict[str, Any]]:
    rows = []
    for job, varying in zip(sweep.jobs, _varying(sweep.jobs), strict=True):
        prov = job.provenance
        value = job.metric(metric, checkpoint)
        rows.append(
            {
                "job": job.job,
                "status": job.status,
                "overrides": " ".join(varying),
                "seed": "" if job.seed is None else job.seed,
                "mIoU": "" if value is None else f"{100 * value:.2f}",
                "steps": prov.get("steps", (job.metrics or {}).get("global_step", "")) or "",
                "wall_s": prov.get("wall_time_s", ""),
                "cpu_s": prov.get("cpu_time_s", ""),
                "error": (job.error or "")[:200],
                "checkpoint": checkpoint,
            }
        )
    return rows


def runs_markdown(
    sweep: Sweep, metric: Sequence[str] = DEFAULT_METRIC, checkpoint: str = "last"
) -> str:
    rows = runs_rows(sweep, metric, checkpoint)
    header = ["job", "status", "overrides", "seed", "mIoU (%)", "steps", "wall s", "CPU s"]
    body = [
        [
            r["job"],
            r["status"] + (f" ({r['error']})" if r["error"] else ""),
            f"`{r['overrides']}`" if r["overrides"] else "",
            r["seed"],
            r["mIoU"],
            r["steps"],
            r["wall_s"],
            r["cpu_s"],
        ]
        for r in rows
    ]
    done = sum(r["status"] == "completed" for r in rows)
    head = f"{done} of {len(rows)} jobs completed"
    bad = [r["job"] for r in rows if r["status"] != "completed"]
    if bad:
        head += f"; not completed: {', '.join(bad)}"
    return head + "\n\n" + _markdown(header, body)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


FORMATS = ("markdown", "csv", "latex")


def render(
    sweep: Sweep,
    paper: str | None = None,
    fmt: str = "markdown",
    runs: bool = True,
    metric: Sequence[str] | None = None,
    class_groups: dict[str, Any] | None = None,
    checkpoint: str = "last",
) -> str:
    """The paper table (``paper`` name, or found from the sweep's experiment) with its
    statistics, a table per class group, and the job list, below the mixed-hardware flag if the
    completed runs come from several CPU/library setups (markdown; a LaTeX comment; CSV rows
    stay data). ``metric``: metrics.json paths that replace the table's metric (e.g.
    ``val.mIoU``); ``checkpoint``: whose scores (``last``, the papers' practice, or ``best`` on
    validation), said under each table."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"--checkpoint {checkpoint!r}: expected one of {', '.join(CHECKPOINTS)}")
    tables = build_tables(sweep, paper, metric, class_groups, checkpoint)
    found = find_spec(paper, sweep.experiment)
    paths = tuple(metric or (found[1].get("metric") if found else None) or DEFAULT_METRIC)
    if fmt == "csv":
        if tables:
            return to_csv([row for t in tables for row in paper_table_rows(t)])
        return to_csv(runs_rows(sweep, paths, checkpoint))
    flag = sweep_hardware_flag(sweep)
    if fmt == "latex":
        if not tables:
            raise ConfigError("--format latex needs a paper table (--paper NAME)")
        latex = "\n\n".join(paper_table_latex(t) for t in tables) + "\n"
        return f"% {flag}\n{latex}" if flag else latex
    parts = [f"**{flag}**"] if flag else []
    parts += [paper_table_markdown(t) for t in tables]
    if runs or not tables:
        parts.append(runs_markdown(sweep, paths, checkpoint))
    if not tables:
        parts.append(checkpoint_note(checkpoint))
    return "\n\n".join(parts)
