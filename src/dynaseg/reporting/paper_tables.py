"""Paper tables: the tables of ``paper_tables.yaml`` (rows, columns, the paper's numbers, the
statistics to report) and a sweep's jobs laid out as one of them, every failed, missing,
under-seeded, duplicate-seed or other-commit cell flagged, never dropped."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from omegaconf import OmegaConf

from dynaseg.errors import ConfigError
from dynaseg.reporting.cells import Cell, PaperTable
from dynaseg.reporting.comparisons import paper_orderings, reference_contrasts
from dynaseg.reporting.sweeps import DEFAULT_METRIC, JobRecord, Sweep, select


def paper_specs() -> dict[str, dict[str, Any]]:
    """The tables of ``paper_tables.yaml`` by name (``dmnet-table1``, ...)."""
    text = resources.files("dynaseg.reporting").joinpath("paper_tables.yaml").read_text()
    return OmegaConf.to_container(OmegaConf.create(text))


def find_spec(name: str | None = None, experiment: str | None = None) -> tuple[str, dict] | None:
    """The paper table called ``name``, or the one whose ``experiments`` list ``experiment``."""
    specs = paper_specs()
    if name:
        if name not in specs:
            raise ConfigError(f"unknown paper table {name!r}; known: {', '.join(specs)}")
        return name, specs[name]
    for key, spec in specs.items():
        if experiment and experiment in spec.get("experiments", []):
            return key, spec
    return None


def cell_metric(
    spec: dict[str, Any],
    row: dict[str, Any],
    col: dict[str, Any],
    metric: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The metrics.json paths a cell reads: the row's ``metric``, else ``metric`` (the command
    line's), else the column's, else the table's; a ``variant`` (row, else table) reads them from
    that test variant of the run (``test_variants.<variant>.<key>``: e.g. the Flip / MS+flip
    evaluation of the same model)."""
    paths = tuple(
        row.get("metric") or metric or col.get("metric") or spec.get("metric") or DEFAULT_METRIC
    )
    variant = row.get("variant", spec.get("variant"))
    if not variant:
        return paths
    keys = dict.fromkeys(p.split(".", 1)[-1] for p in paths)  # test.mIoU, val.mIoU -> mIoU
    return tuple(f"test_variants.{variant}.{k}" for k in keys)


def class_group_mean(
    job: JobRecord, classes: Sequence[str], stages: Sequence[str], checkpoint: str = "last"
) -> float | None:
    """Mean IoU over ``classes`` from the first of ``stages`` whose ``per_class`` the run has for
    ``checkpoint`` (classes absent from the evaluated images, IoU null, are left out as mIoU
    leaves them out)."""
    if job.status != "completed":
        return None
    for path in job.checkpoint_paths([f"{stage}.per_class" for stage in stages], checkpoint):
        stage = path.removesuffix(".per_class")
        per_class = select(job.metrics or {}, path)
        if not isinstance(per_class, dict):
            continue
        unknown = [c for c in classes if c not in per_class]
        if unknown:
            raise ConfigError(
                f"class group {', '.join(classes)}: {', '.join(unknown)} not in "
                f"{stage}.per_class of job {job.job} (its classes: {', '.join(per_class)})"
            )
        ious = [per_class[c].get("IoU") for c in classes]
        ious = [v for v in ious if isinstance(v, int | float) and not math.isnan(v)]
        return statistics.fmean(ious) if ious else None
    return None


def pair_accuracy(
    job: JobRecord, classes: Sequence[str], stages: Sequence[str], checkpoint: str = "last"
) -> float | None:
    """Of the pixels labelled one of the two ``classes`` and predicted as one of them, the share
    predicted as their own class (1 − the pair confusion; docs/ablations.md, Evidence round 2,
    R3), from the first of ``stages`` whose ``confusion_matrix`` (rows: ground truth, classes in
    ``per_class``'s order) the run has for ``checkpoint``. ``None`` if it has none (a run from
    before metrics.json kept the matrix) or no pixel of the pair was labelled and predicted so."""
    if job.status != "completed":
        return None
    for path in job.checkpoint_paths([f"{stage}.confusion_matrix" for stage in stages], checkpoint):
        stage = path.removesuffix(".confusion_matrix")
        matrix, per_class = (
            select(job.metrics or {}, path),
            select(job.metrics or {}, f"{stage}.per_class"),
        )
        if not isinstance(matrix, list) or not isinstance(per_class, dict):
            continue
        names = list(per_class)
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise ConfigError(
                f"class pair {', '.join(classes)}: {', '.join(unknown)} not in {stage}.per_class "
                f"of job {job.job} (its classes: {', '.join(names)})"
            )
        a, b = (names.index(c) for c in classes)
        own, crossed = matrix[a][a] + matrix[b][b], matrix[a][b] + matrix[b][a]
        return own / (own + crossed) if own + crossed else None
    return None


GROUP_METRICS = {"mIoU": class_group_mean, "pair accuracy": pair_accuracy}


def class_group(value: Any) -> tuple[list[str], str]:
    """A ``class_groups`` entry (spec or command line) as ``(classes, metric)``: a list of class
    names is their mIoU; ``{pair_accuracy: [a, b]}`` is the pair accuracy of ``a`` vs ``b``."""
    if (
        isinstance(value, dict)
        and set(value) == {"pair_accuracy"}
        and len(value["pair_accuracy"]) == 2
    ):
        return list(value["pair_accuracy"]), "pair accuracy"
    if isinstance(value, list | tuple) and all(isinstance(c, str) for c in value):
        return list(value), "mIoU"
    raise ConfigError(
        f"class group {value!r}: expected a list of class names (their mIoU) or "
        "{pair_accuracy: [CLASS_A, CLASS_B]}"
    )


def _commit_label(job: JobRecord) -> str:
    git = job.provenance.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10]
    return commit + ("+dirty" if git.get("dirty") else "")


def build_paper_table(
    sweep: Sweep,
    name: str,
    spec: dict[str, Any],
    metric: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    group: str | None = None,
    checkpoint: str = "last",
    group_metric: str = "mIoU",
) -> PaperTable:
    """Lay the sweep's jobs out as the paper's table ``spec`` (see ``paper_tables.yaml``), with
    the statistics the spec declares (``reference``, ``contrasts``, ``orderings``).

    ``metric`` replaces the spec's metric paths; ``classes`` makes every cell the mIoU over those
    classes (``<stage>.per_class``, the stage of the metric paths), without paper numbers;
    ``group`` names that class group and ``group_metric`` says what its cells hold (``mIoU``
    over the classes, or the ``pair accuracy`` of two: :data:`GROUP_METRICS`); ``checkpoint`` (``last``, ``best``) whose scores the cells
    hold (:meth:`~dynaseg.reporting.sweeps.JobRecord.checkpoint_paths`). A completed run without
    a score of the best checkpoint (from before metrics.json recorded it, or a score measured on
    the tested checkpoint only: pixel accuracy, test variants, per-class IoU) is flagged in its
    cell, not counted as failed; so is one without a pair accuracy (no confusion matrix in its
    metrics.json, or no pixel of the pair). A class group's table tests the same contrasts and orderings on
    its own metric, Holm-corrected in its own family (docs/ablations.md, Evidence round 2, E2).
    """
    rows, cols = spec["rows"], spec["columns"]
    paper = (spec.get("paper") or []) if classes is None else []
    # a completed run may lack the score without having failed: the best checkpoint's is its
    # mIoU only, and runs from before metrics.json kept the confusion matrix have no pair's
    unscorable = checkpoint != "last" or (classes is not None and group_metric != "mIoU")
    n_seeds = max(1, len(sweep.seeds))
    used: set[int] = set()
    cells: list[list[Cell]] = []
    notes: dict[str, str] = {}
    for r, row in enumerate(rows):
        if row.get("note"):
            notes[row["label"]] = row["note"]
        # a row may read another metric (e.g. parameter counts) at another scale than %
        scale = float(row.get("scale", 100.0))
        line = []
        for c, col in enumerate(cols):
            paths = cell_metric(spec, row, col, metric)
            stages = [p.split(".")[0] for p in paths]
            cell = Cell(expected_seeds=n_seeds)
            cell.paper = paper[r][c] if r < len(paper) and c < len(paper[r]) else None
            only = row.get("only")
            cell.applicable = (
                not row.get("note")
                and not col.get("note")  # a column that cannot be run
                and (not only or col["label"] in only)
            )
            if classes is not None and row.get("metric"):
                cell.applicable = False  # a row of its own metric (parameters) has no classes
            if cell.applicable:
                match = {**(col.get("match") or {}), **(row.get("match") or {})}
                for i, job in enumerate(sweep.jobs):
                    if all(matches(select(job.settings, k), v) for k, v in match.items()):
                        used.add(i)
                        if classes is None:
                            value = job.metric(paths, checkpoint)
                        else:
                            score = GROUP_METRICS[group_metric]
                            value = score(job, classes, stages, checkpoint)
                        if job.status == "missing":
                            cell.missing.append(job.job)
                        elif job.status == "completed" and value is None and unscorable:
                            cell.unscored.append(job.job)
                        elif job.status != "completed" or value is None:  # failed, interrupted
                            cell.failed.append(job.job)
                        else:
                            seed = str(job.seed) if job.seed is not None else f"job {job.job}"
                            cell.runs.add(seed, scale * value)
                            cell.jobs.append(job.job)
                            cell.commits.append(_commit_label(job))
                _clear_rerun(cell, sweep)
            line.append(cell)
        cells.append(line)
    unmatched = [j for i, j in enumerate(sweep.jobs) if i not in used]
    table = PaperTable(
        name, spec, [r["label"] for r in rows], [c["label"] for c in cols], cells, unmatched, notes
    )
    table.checkpoint = checkpoint
    if classes is not None:
        table.classes, table.group, table.group_metric = list(classes), group, group_metric
    _flag_commits(table)
    table.contrasts = reference_contrasts(table)
    table.orderings = paper_orderings(table)  # per table: a class group is its own family
    return table


def matches(value: Any, expected: Any) -> bool:
    """A job's setting against a row's or column's ``match`` value: equal, or, for
    ``{one_of: [a, b]}``, equal to one of them (e.g. a feature index written as the stage number
    before issue #30 and as its role name since: ``{one_of: [4, context]}``)."""
    if isinstance(expected, dict) and set(expected) == {"one_of"}:
        return any(value == option for option in expected["one_of"])
    return value == expected


def _clear_rerun(cell: Cell, sweep: Sweep) -> None:
    """A failed or missing job whose seed completed in this cell (a re-run sweep merged in, or
    the same job in a re-launch) no longer counts as failed or missing."""
    labels = {j.job: j for j in sweep.jobs}
    done = set(cell.per_seed)
    for kind in ("failed", "missing"):
        keep = []
        for job in getattr(cell, kind):
            seed = labels[job].seed
            if seed is not None and str(seed) in done:
                cell.superseded.append(job)
            else:
                keep.append(job)
        setattr(cell, kind, keep)


def _flag_commits(table: PaperTable) -> None:
    """Flag every cell with runs from another commit than most of the table's runs."""
    commits = [c for line in table.cells for cell in line for c in cell.commits]
    if not commits:
        return
    table.commit = Counter(commits).most_common(1)[0][0]
    for line in table.cells:
        for cell in line:
            cell.other_commits = sorted({c for c in cell.commits if c != table.commit})


def parse_class_groups(
    items: Iterable[str], option: str = "--metric-classes"
) -> dict[str, list[str]]:
    """``["context=car,boat", ...]`` (``--metric-classes``) → ``{"context": ["car", "boat"]}``."""
    groups: dict[str, list[str]] = {}
    for item in items:
        name, sep, classes = str(item).partition("=")
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if not sep or not name.strip() or not names:
            raise ConfigError(
                f"{option} {item!r}: expected NAME=CLASS1,CLASS2 (class names as in "
                "metrics.json's val.per_class)"
            )
        groups[name.strip()] = names
    return groups


def parse_class_pairs(items: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """``["size pair=bird,balloon"]`` (``--metric-pairs``) → ``{"size pair": {"pair_accuracy":
    ["bird", "balloon"]}}``: class groups whose tables hold the pair accuracy."""
    pairs = {}
    for name, classes in parse_class_groups(items, "--metric-pairs").items():
        if len(classes) != 2:
            raise ConfigError(
                f"--metric-pairs {name}={','.join(classes)}: expected NAME=CLASS_A,CLASS_B "
                "(two classes)"
            )
        pairs[name] = {"pair_accuracy": classes}
    return pairs


def build_tables(
    sweep: Sweep,
    paper: str | None = None,
    metric: Sequence[str] | None = None,
    class_groups: dict[str, Any] | None = None,
    checkpoint: str = "last",
) -> list[PaperTable]:
    """The paper table of the sweep (primary metric) and one table per class group: the spec's
    ``class_groups`` updated by ``class_groups`` (:func:`class_group`), each with the spec's contrasts and orderings in
    its own Holm family; cells hold ``checkpoint``'s scores. Empty if the sweep is no paper
    table."""
    found = find_spec(paper, sweep.experiment)
    if not found:
        return []
    name, spec = found
    tables = [build_paper_table(sweep, name, spec, metric, checkpoint=checkpoint)]
    groups = {**(spec.get("class_groups") or {}), **(class_groups or {})}
    for group, value in groups.items():
        classes, group_metric = class_group(value)
        tables.append(
            build_paper_table(sweep, name, spec, metric, classes, group, checkpoint, group_metric)
        )
    return tables
