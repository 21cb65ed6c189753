"""Statistics in the table builder, on fabricated sweeps whose answers are recomputed here
independently (scipy.stats) or by hand: cell t intervals, paired differences, Holm, orderings,
duplicate seeds, mixed commits, a merged re-run, class-group metrics, LaTeX."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dynaseg.errors import ConfigError
from dynaseg.reporting.cell_text import format_cell, format_difference
from dynaseg.reporting.paper_tables import (
    build_paper_table,
    build_tables,
    find_spec,
    paper_specs,
    parse_class_groups,
    parse_class_pairs,
)
from dynaseg.reporting.rendering import render
from dynaseg.reporting.seed_stats import adjust_family, holm, paired_difference
from dynaseg.reporting.sweeps import Sweep, load_sweep
from fabricated_sweep import (
    STATS_VALUES,
    make_fabricated_sweep,
    make_mini_sweep,
    make_stats_sweep,
    write_job,
)
from helpers import run_python

REGULAR, DEPTHWISE, DYNAMIC = 0, 1, 2
K1, K1357 = 0, 3  # columns {1} and {1,3,5,7}


def points(key: tuple[str, tuple[int, ...]]) -> np.ndarray:
    return 100 * np.array(STATS_VALUES[key], dtype=float)


@pytest.fixture
def stats_dir(tmp_path: Path) -> Path:
    return make_stats_sweep(tmp_path)


@pytest.fixture
def table1(stats_dir: Path):
    return build_paper_table(load_sweep(stats_dir), *find_spec("dmnet-table1"))


def test_holm_on_a_hand_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    adjusted, levels = holm([0.01, 0.04, 0.03, 0.005, None])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and adjusted[4] is None
    # resolved: their step's level; unresolved (0.04, 0.03): the level of the step where Holm
    # stopped (2 of 4 resolved: 1 - 0.05/2), so their intervals contain 0 like their verdicts
    assert levels[:4] == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2, 1 - 0.05 / 4])
    # capped at 1
    assert holm([0.6, 0.7])[0] == pytest.approx([1.0, 1.0])


def test_paired_difference_matches_scipy() -> None:
    a = {"1": 80.0, "2": 82.0, "3": 79.0, "4": 81.5, "9": 50.0}
    b = {"1": 70.0, "2": 73.0, "3": 69.5, "4": 72.0}
    diff = paired_difference(a, b)  # seed 9 has no partner: left out
    assert diff.seeds == ["1", "2", "3", "4"]
    d = np.array([10.0, 9.0, 9.5, 9.5])
    assert diff.mean == pytest.approx(d.mean()) and diff.sd == pytest.approx(d.std(ddof=1))
    assert diff.p == pytest.approx(stats.ttest_rel([80, 82, 79, 81.5], [70, 73, 69.5, 72]).pvalue)
    low, high = stats.t.interval(0.95, 3, loc=d.mean(), scale=d.std(ddof=1) / 2)
    assert diff.interval == pytest.approx((low, high))
    assert paired_difference({"1": 1.0}, {"1": 0.0}).p is None  # one pair: nothing to test


def test_cells_mean_and_t_interval_over_seeds(table1) -> None:
    cell = table1.cells[DYNAMIC][K1357]
    values = points(("dynamic", (1, 3, 5, 7)))
    low, high = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    assert cell.n == 4 and cell.mean == pytest.approx(values.mean())
    assert cell.ci == pytest.approx((high - low) / 2)
    assert format_cell(cell) == f"80.50 ± {(high - low) / 2:.2f} (n=4) / 78.21"
    one = table1.cells[REGULAR][K1]  # the one-seed cell is marked, without an interval
    assert one.ci is None and format_cell(one) == "75.00 / 70.76 **1/4 seeds: no CI**"


def test_differences_to_the_reference_row_holm_corrected(table1, stats_dir: Path) -> None:
    by_cell = {x.a: x for x in table1.contrasts}
    # every cell of the other rows is compared with the dynamic row's cell of its column
    assert set(by_cell) == {(r, c) for r in (REGULAR, DEPTHWISE) for c in range(4)}
    assert all(x.b == (DYNAMIC, x.a[1]) for x in table1.contrasts)
    regular, depthwise = by_cell[(REGULAR, K1357)].diff, by_cell[(DEPTHWISE, K1357)].diff
    dyn = points(("dynamic", (1, 3, 5, 7)))
    p_reg = stats.ttest_rel(points(("regular", (1, 3, 5, 7))), dyn).pvalue
    p_dw = stats.ttest_rel(points(("depthwise", (1, 3, 5, 7))), dyn).pvalue
    assert regular.p == pytest.approx(p_reg) and depthwise.p == pytest.approx(p_dw)
    # a family of two testable contrasts (one-pair and empty cells are not tested)
    assert regular.adjusted_p == pytest.approx(2 * p_reg)
    assert depthwise.adjusted_p == pytest.approx(p_dw)
    assert by_cell[(REGULAR, K1)].diff.p is None and by_cell[(REGULAR, K1)].diff.n == 1
    # the smaller p is tested at 1 - 0.05/2, its interval at that level; resolved: marked
    d = points(("regular", (1, 3, 5, 7))) - dyn
    low, high = stats.t.interval(1 - 0.05 / 2, 3, loc=d.mean(), scale=stats.sem(d))
    assert regular.interval == pytest.approx((low, high)) and high < 0 and regular.resolved
    assert not depthwise.resolved
    text = render(load_sweep(stats_dir), "dmnet-table1", runs=False)
    row = next(line for line in text.splitlines() if line.startswith("| Regular conv @ {1,3,5,7}"))
    assert f"[{low:+.2f}, {high:+.2f}] (97.5 % CI, n=4, p_Holm={2 * p_reg:.3g}) *" in row
    depthwise_row = next(
        line for line in text.splitlines() if line.startswith("| Depthwise conv @ {1,3,5,7}")
    )
    assert "(95 % CI, n=4," in depthwise_row and not depthwise_row.rstrip(" |").endswith("*")


def test_paper_orderings_counted_by_verdict(table1, stats_dir: Path) -> None:
    verdicts = {(x.label_a, x.label_b): x.verdict for x in table1.orderings}
    assert verdicts[("Ours (dynamic) @ {1,3,5,7}", "Regular conv @ {1,3,5,7}")] == (
        "resolved-agree"
    )
    assert verdicts[("Ours (dynamic) @ {1,3,5,7}", "Depthwise conv @ {1,3,5,7}")] == "unresolved"
    assert verdicts[("Ours (dynamic) @ {1,3,5,7}", "Ours (dynamic) @ {1}")] == "resolved-disagree"
    assert verdicts[("Ours (dynamic) @ {1}", "Regular conv @ {1}")] == "unresolved"  # one pair
    assert verdicts[("Ours (dynamic) @ {1}", "Depthwise conv @ {1}")] == "not run"
    assert len(verdicts) == 9  # 4 + 4 columns + the kernel-set ordering
    # Holm across the three testable orderings
    dyn = points(("dynamic", (1, 3, 5, 7)))
    ps = [
        stats.ttest_rel(dyn, points(("regular", (1, 3, 5, 7)))).pvalue,
        stats.ttest_rel(dyn, points(("depthwise", (1, 3, 5, 7)))).pvalue,
        stats.ttest_rel(dyn, points(("dynamic", (1,)))).pvalue,
    ]
    tested = [x.diff.adjusted_p for x in table1.orderings if x.diff.p is not None]
    assert sorted(tested) == pytest.approx(sorted(holm(ps)[0]))
    text = render(load_sweep(stats_dir), "dmnet-table1", runs=False)
    assert (
        "Paper orderings (9 declared): 1 resolved-agree, 1 resolved-disagree, 2 unresolved, "
        "5 not run." in text
    )


def test_interaction_orderings_difference_of_differences(stats_dir: Path) -> None:
    name, spec = find_spec("dmnet-table1")
    orderings = [
        # one cell pair per side: (dyn - depthwise) - (dyn - regular) = regular - depthwise
        "Ours (dynamic) @ {1,3,5,7} - Depthwise conv @ {1,3,5,7} > "
        "Ours (dynamic) @ {1,3,5,7} - Regular conv @ {1,3,5,7}",
        # rows: in every column; only {1,3,5,7} has all three rows
        "Ours (dynamic) - Regular conv > Ours (dynamic) - Depthwise conv",
    ]
    table = build_paper_table(load_sweep(stats_dir), name, {**spec, "orderings": orderings})
    full, *by_column = table.orderings
    interaction = points(("regular", (1, 3, 5, 7))) - points(("depthwise", (1, 3, 5, 7)))
    assert full.diff.differences == pytest.approx(list(interaction))
    assert full.diff.p == pytest.approx(stats.ttest_1samp(interaction, 0.0).pvalue)
    assert full.verdict == "resolved-disagree"
    assert full.label_a == "(Ours (dynamic) @ {1,3,5,7} − Depthwise conv @ {1,3,5,7})"
    assert full.paper == pytest.approx((78.21 - 71.88) - (78.21 - 72.37))
    assert [x.verdict for x in by_column] == ["not run"] * 3 + ["resolved-agree"]
    assert by_column[3].diff.differences == pytest.approx(list(-interaction))
    with pytest.raises(ConfigError, match="same kind of thing"):
        build_paper_table(
            Sweep([], []), name, {**spec, "orderings": ["@ {1} - Ours (dynamic) > @ {1}"]}
        )


def test_two_runs_of_one_seed_are_one_seed_and_flagged(tmp_path: Path) -> None:
    sweep = tmp_path / "dup"
    write_job(sweep, 0, "regular", 1, 0.70)
    write_job(sweep, 1, "regular", 1, 0.72)  # the same seed again (e.g. a sweep run twice)
    write_job(sweep, 2, "regular", 2, 0.75)
    table = build_paper_table(load_sweep(sweep), *find_spec("dmnet-table1"))
    cell = table.cells[REGULAR][K1357]
    assert cell.per_seed == pytest.approx({"1": 71.0, "2": 75.0}) and cell.n == 2
    assert cell.flags == ["seed 1 run 2x (averaged)"]
    assert format_cell(cell).endswith("(n=2) / 72.37 **seed 1 run 2x (averaged)**")


def test_cells_from_another_commit_are_flagged(tmp_path: Path) -> None:
    # job 6 is regular {1,3,5,7} seed 3 (jobs 0-3: dynamic {1,3,5,7}, 4-7 regular; STATS_VALUES)
    sweep = make_stats_sweep(tmp_path, other_commit_job=6)
    table = build_paper_table(load_sweep(sweep), *find_spec("dmnet-table1"))
    assert table.commit == "0123456789"
    flagged = [
        (r, c)
        for r, line in enumerate(table.cells)
        for c, cell in enumerate(line)
        if cell.other_commits
    ]
    assert flagged == [(REGULAR, K1357)]
    assert "commit deadbeef00" in table.cells[REGULAR][K1357].flags
    assert "Most runs come from commit 0123456789" in render(load_sweep(sweep), "dmnet-table1")


def test_a_merged_rerun_clears_missing_and_failed(tmp_path: Path) -> None:
    sweep = make_fabricated_sweep(tmp_path / "a")  # job 3 (depthwise seed 2) missing, 5 failed
    rerun = tmp_path / "b" / "rerun"
    write_job(rerun, 0, "depthwise", 2, 0.71)
    write_job(rerun, 1, "dynamic", 2, 0.82)
    alone = build_paper_table(load_sweep(sweep), *find_spec("dmnet-table1"))
    assert alone.cells[DEPTHWISE][K1357].missing == ["3"]
    merged = build_paper_table(load_sweep([sweep, rerun]), *find_spec("dmnet-table1"))
    depthwise, dynamic = merged.cells[DEPTHWISE][K1357], merged.cells[DYNAMIC][K1357]
    assert depthwise.missing == [] and depthwise.superseded == ["sweep/3"]
    assert dynamic.failed == [] and dynamic.superseded == ["sweep/5"]
    assert depthwise.per_seed == pytest.approx({"1": 69.0, "2": 71.0})
    assert depthwise.flags == [] and dynamic.flags == []
    rows = list(csv.DictReader(io.StringIO(render(load_sweep([sweep, rerun]), fmt="csv"))))
    cell = next(r for r in rows if r["row"] == "Depthwise conv" and r["column"] == "{1,3,5,7}")
    assert cell["flags"] == "" and cell["superseded_jobs"] == "sweep/3" and cell["n"] == "2"


def test_class_group_metric_from_per_class(tmp_path: Path) -> None:
    sweep = load_sweep(make_stats_sweep(tmp_path))
    groups = parse_class_groups(["vehicles=car,boat", "with_absent=road,sky"])
    primary, vehicles, absent = build_tables(sweep, "dmnet-table1", class_groups=groups)
    # car = mIoU + 5, boat = mIoU - 5 points: the group mean equals the cell's mIoU
    assert vehicles.cells[DYNAMIC][K1357].per_seed == pytest.approx(
        primary.cells[DYNAMIC][K1357].per_seed
    )
    assert vehicles.cells[DYNAMIC][K1357].paper is None
    # car and boat are the mIoU shifted by ±5 points: the group's orderings are the primary's
    assert [o.diff.p for o in vehicles.orderings] == pytest.approx(
        [o.diff.p for o in primary.orderings]
    )
    assert len(vehicles.contrasts) == len(primary.contrasts)
    # road's IoU is null (absent from the images): left out, as mIoU leaves it out
    assert absent.cells[DYNAMIC][K1357].values == pytest.approx([90.0] * 4)
    text = render(sweep, "dmnet-table1", class_groups=groups)
    assert "mIoU over vehicles classes (car, boat), %" in text
    with pytest.raises(
        ConfigError,
        match=r"bird not in val.per_class of job 16 \(its classes: sky, road, car, boat\)",
    ):
        build_tables(sweep, "dmnet-table1", class_groups={"x": ["car", "bird"]})
    with pytest.raises(ConfigError, match="expected NAME=CLASS1,CLASS2"):
        parse_class_groups(["vehicles"])


@pytest.mark.slow  # CLI subprocess; fast: the same in-process, test_make_table.py
def test_make_table_cli_class_groups_metric_and_latex(tmp_path: Path) -> None:
    sweep = make_stats_sweep(tmp_path)
    cmd = ["scripts/make_table.py", str(sweep), "--paper", "dmnet-table1"]
    out = run_python(
        *cmd, "--metric-classes", "vehicles=car,boat", "--metric", "val.mIoU", "--format", "csv"
    )
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["metric"] for r in rows} == {"mIoU", "mIoU over vehicles"} and len(rows) == 24
    bad = run_python(*cmd, "--metric-classes", "x=car,zebra")
    assert bad.returncode == 1 and bad.stderr.startswith("error: class group car, zebra: zebra")
    latex = run_python(*cmd, "--format", "latex")
    assert latex.returncode == 0, latex.stderr
    check_latex(latex.stdout)
    assert r"80.50 $\pm$" in latex.stdout and r"\textbf{1/4 seeds: no CI}" in latex.stdout


def check_latex(text: str) -> None:
    """The LaTeX parses as far as a tabular needs: environments nest, braces balance, every row
    has as many unescaped ``&`` as the column spec allows, no unescaped special characters."""
    stack: list[str] = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", text):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, env
    assert stack == []
    unescaped = re.sub(r"\\[{}&%$#_]", "", text)
    assert unescaped.count("{") == unescaped.count("}")
    outside_math = re.sub(r"\$[^$]*\$", "", unescaped)
    assert not re.search(r"[%#_&]", outside_math.replace(" & ", " ")), "unescaped special char"
    columns = None
    for line in text.splitlines():
        if line.startswith(r"\begin{tabular}"):
            columns = len(re.search(r"\{tabular\}\{(\w+)\}", line).group(1))
        elif line.endswith(r"\\") and columns:
            assert len(re.findall(r"(?<!\\)&", line)) == columns - 1, line


def test_every_declared_reference_and_ordering_names_real_cells() -> None:
    """paper_tables.yaml's statistics declarations address existing rows/columns, and every
    declared ordering is one the paper's own numbers show (A − B > 0)."""
    empty = Sweep([], [])
    for name, spec in paper_specs().items():
        table = build_paper_table(empty, name, spec)  # raises ConfigError on a bad address
        runnable = [r for r in spec["rows"] if not r.get("note")]
        if len(runnable) * len([c for c in spec["columns"] if not c.get("note")]) == 1:
            # one cell run (a comparison with other methods' published numbers, DSNet Table 5):
            # nothing of ours to compare it with
            assert not spec.get("reference") and not spec.get("orderings"), name
            continue
        assert spec.get("reference") and spec.get("orderings"), name
        for x in table.orderings:  # (>= 0: a table may repeat one paper number in two columns)
            assert x.paper is None or x.paper >= 0, (name, x.label_a, x.label_b)


def test_a_bad_address_names_the_table_and_key() -> None:
    name, spec = find_spec("dmnet-table4")
    with pytest.raises(ConfigError, match=r"dmnet-table4.orderings\[0\]: .*no row 'Stage 9'"):
        build_paper_table(Sweep([], []), name, {**spec, "orderings": ["Stage 9 > Stage 2"]})


def test_an_interaction_across_columns_that_repeat_the_paper_has_no_paper_delta(
    stats_dir: Path,
) -> None:
    # the miniature's zoom columns repeat one paper number per row: the paper has no zoom axis,
    # so "(dyn - regular) with zoom > (dyn - regular) without" gets no paper Δ (not +0.00)
    name, spec = find_spec("dmnet-table1")
    columns = [{**spec["columns"][3], "label": label} for label in ("zoom", "no zoom")]
    paper = [[row[3], row[3]] for row in spec["paper"]]
    ordering = (
        "Ours (dynamic) @ zoom - Regular conv @ zoom > "
        "Ours (dynamic) @ no zoom - Regular conv @ no zoom"
    )
    repeated = {**spec, "columns": columns, "paper": paper, "orderings": [ordering]}
    (interaction,) = build_paper_table(load_sweep(stats_dir), name, repeated).orderings
    assert interaction.paper is None and interaction.diff.differences == pytest.approx([0.0] * 4)
    # distinct paper numbers per column: the paper Δ is the difference of differences
    distinct = {**repeated, "paper": [[row[3], row[0]] for row in spec["paper"]]}
    (interaction,) = build_paper_table(load_sweep(stats_dir), name, distinct).orderings
    reg, _, dyn = spec["paper"]
    assert interaction.paper == pytest.approx((dyn[3] - reg[3]) - (dyn[0] - reg[0]))


def test_holm_interval_never_disagrees_with_the_verdict_issue_example() -> None:
    # p = (0.03, 0.04): Holm resolves neither (p_Holm 0.06, 0.06); before, the second row's 95 %
    # interval excluded 0. Both are now shown at 97.5 %, where both contain 0.
    adjusted, levels = holm([0.03, 0.04])
    assert adjusted == pytest.approx([0.06, 0.06]) and levels == pytest.approx([0.975, 0.975])


def test_holm_intervals_agree_with_verdicts_on_random_families() -> None:
    rng = np.random.default_rng(0)
    disagreements = 0
    for _ in range(100):
        family = []
        for _ in range(int(rng.integers(2, 7))):
            n = int(rng.integers(3, 8))
            d = rng.normal(rng.normal(0, 1.5), rng.uniform(0.3, 2.0), n)
            seeds = [str(s) for s in range(n)]
            family.append(
                paired_difference(dict(zip(seeds, d, strict=True)), dict.fromkeys(seeds, 0.0))
            )
        adjust_family(family)
        for diff in family:
            d = np.array(diff.differences)
            low, high = stats.t.interval(diff.level, diff.n - 1, d.mean(), stats.sem(d))
            assert diff.interval == pytest.approx((low, high))  # scipy's interval at that level
            assert diff.p == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
            excludes_zero = low > 0 or high < 0
            disagreements += excludes_zero != diff.resolved
    assert disagreements == 0


def test_tied_p_values_get_levels_independent_of_their_order() -> None:
    for order in ([0.01, 0.01, 0.002, 0.3], [0.3, 0.002, 0.01, 0.01]):
        adjusted, levels = holm(order)
        by_p: dict[float, list[tuple[float, float]]] = {}
        for p, a, level in zip(order, adjusted, levels, strict=True):
            by_p.setdefault(p, []).append((a, level))
        # the tie (positions 2 and 3 of 4, both resolved) is shown at position 2's level
        assert by_p[0.01] == [pytest.approx((0.03, 1 - 0.05 / 3))] * 2
        assert by_p[0.002] == [pytest.approx((0.008, 1 - 0.05 / 4))]
        assert by_p[0.3] == [pytest.approx((0.3, 1 - 0.05 / 1))]


def test_zero_spread_is_undefined_not_certain() -> None:
    two = paired_difference({"1": 3.0, "2": 4.0}, {"1": 2.0, "2": 3.0})  # +1, +1 at n = 2
    same = paired_difference({str(s): 5.0 for s in range(5)}, {str(s): 5.0 for s in range(5)})
    other = paired_difference({"1": 2.0, "2": 3.1, "3": 1.0}, {"1": 0.0, "2": 0.0, "3": 0.0})
    for diff in (two, same):
        assert diff.zero_spread and diff.p is None and diff.interval is None
    assert two.mean == pytest.approx(1.0) and same.mean == 0.0
    adjust_family([two, same, other])  # left out of the family: a family of one
    assert two.adjusted_p is None and not two.resolved and not same.resolved
    assert other.adjusted_p == pytest.approx(stats.ttest_1samp([2.0, 3.1, 1.0], 0).pvalue)


def test_class_group_orderings_are_their_own_holm_family(tmp_path: Path) -> None:
    """Protocol E2: every declared ordering and interaction of a miniature table is tested on the
    scale-decided and the context-decided classes too, Holm-corrected within each group."""
    sweep, values = make_mini_sweep(tmp_path)
    tables = build_tables(load_sweep(sweep), "dmnet-table1-mini")
    assert [t.group for t in tables] == [None, "context-decided", "scale-decided"]
    declared = len(find_spec("dmnet-table1-mini")[1]["orderings"])

    def group_mean(head: str, zoom: str, classes: list[str]) -> np.ndarray:
        return np.array(
            [100 * np.mean([values[(head, zoom, s)][c] for c in classes]) for s in range(1, 6)]
        )

    for table in tables[1:]:
        # FCN and Dynamic {1} did not run: 3 row orderings x 2 conditions + 2 interactions
        tested = [o for o in table.orderings if o.verdict != "not run"]
        assert len(table.orderings) == len(tables[0].orderings) > declared and len(tested) == 8
        dyn = {z: group_mean("dynamic", z, table.classes) for z in ("zoom", "fixed")}
        reg = {z: group_mean("regular", z, table.classes) for z in ("zoom", "fixed")}
        by_label = {(o.label_a, o.label_b): o.diff for o in tested}
        zoom = by_label[("Dynamic {1,3,5,7} @ zoom 0.6-1.6", "Regular {1,3,5,7} @ zoom 0.6-1.6")]
        assert zoom.p == pytest.approx(stats.ttest_rel(dyn["zoom"], reg["zoom"]).pvalue)
        interaction = by_label[
            (
                "(Dynamic {1,3,5,7} @ zoom 0.6-1.6 − Regular {1,3,5,7} @ zoom 0.6-1.6)",
                "(Dynamic {1,3,5,7} @ zoom 1 (control) − Regular {1,3,5,7} @ zoom 1 (control))",
            )
        ]
        gains = (dyn["zoom"] - reg["zoom"]) - (dyn["fixed"] - reg["fixed"])
        assert interaction.mean == pytest.approx(gains.mean())
        assert interaction.p == pytest.approx(stats.ttest_1samp(gains, 0).pvalue)
        # Holm over this group's eight p values alone (not the primary's, not the other group's)
        adjusted = [d.adjusted_p for d in by_label.values()]
        expected = holm([d.p for d in by_label.values()])[0]
        assert adjusted == pytest.approx(expected)
        for d in by_label.values():  # the interval agrees with the verdict
            low, high = d.interval
            assert (low > 0 or high < 0) == d.resolved
    # the dynamic head's +10 points on bird and balloon with the zoom resolve on that group only
    # (diluted in the primary metric's six classes, absent from the context-decided ones)
    verdicts = [{(o.label_a, o.label_b): o.verdict for o in t.orderings} for t in tables]
    gain = ("Dynamic {1,3,5,7} @ zoom 0.6-1.6", "Regular {1,3,5,7} @ zoom 0.6-1.6")
    assert [v[gain] for v in verdicts] == ["unresolved", "unresolved", "resolved-agree"]
    text = render(load_sweep(sweep), "dmnet-table1-mini", runs=False)
    assert "Paper orderings on the scale-decided classes (14 declared):" in text
    assert "across these orderings (their own Holm family)" in text


def test_every_miniature_table_declares_both_class_groups() -> None:
    specs = paper_specs()
    minis = {k: v for k, v in specs.items() if k.endswith("-mini") or k.startswith("mini-")}
    assert set(minis) == {
        "mini-controls",
        "dmnet-table1-mini",
        "dmnet-table2-mini",
        "dmnet-table4-mini",
        "scale-control-mini",
    }
    for name, spec in minis.items():
        assert spec["class_groups"] == {
            "context-decided": ["car", "boat", "sheep", "buoy"],
            "scale-decided": ["bird", "balloon"],
        }, name
        assert spec.get("orderings"), name


def test_captions_state_the_interval_level_rule(stats_dir: Path) -> None:
    text = render(load_sweep(stats_dir), "dmnet-table1", runs=False)
    rule = (
        "a resolved row's interval is at its Holm step's level, an unresolved row's at the level "
        "of the step where Holm stopped"
    )
    assert text.count(rule) == 2  # the differences' caption and the orderings' summary
    assert "at the level Holm's procedure tests it at" not in text
    same = paired_difference({"1": 2.0, "2": 3.0}, {"1": 1.0, "2": 2.0})
    assert format_difference(same) == "+1.00 (n=2, sd = 0: not tested)"


def _add_pair_confusion(sweep_dir: Path, crossed_of: Callable[[int, int], int | None]) -> None:
    """Give every job of a stats sweep a val confusion matrix over (sky, road, car, boat) whose
    car/boat block has 100 pixels on its diagonal and ``crossed_of(job, seed)`` off it."""
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        payload = json.loads(path.read_text())
        job, seed = int(path.parent.name), payload["provenance"]["seed"]
        crossed = crossed_of(job, seed)
        if payload.get("status") != "completed" or crossed is None:
            continue
        matrix = [[500, 0, 3, 4], [0, 0, 0, 0], [7, 0, 60, crossed], [9, 0, 0, 40]]
        payload["val"]["confusion_matrix"] = matrix
        path.write_text(json.dumps(payload))


def test_pair_accuracy_tables_read_the_confusion_matrix(tmp_path: Path) -> None:
    sweep_dir = make_stats_sweep(tmp_path)
    # car→boat confusions grow with the job number; job 0 ran before matrices were kept
    _add_pair_confusion(sweep_dir, lambda job, seed: None if job == 0 else 2 * job + seed)
    sweep = load_sweep(sweep_dir)
    groups = {**parse_class_groups(["vehicles=car,boat"]), **parse_class_pairs(["pair=car,boat"])}
    primary, vehicles, pair = build_tables(sweep, "dmnet-table1", class_groups=groups)
    assert pair.group_metric == "pair accuracy" and vehicles.group_metric == "mIoU"
    expected: dict[tuple[int, int], dict[str, float]] = {}
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        payload = json.loads(path.read_text())
        matrix = payload.get("val", {}).get("confusion_matrix")
        if matrix is None:
            continue
        own = matrix[2][2] + matrix[3][3]
        share = own / (own + matrix[2][3] + matrix[3][2])  # stray sky pixels are not the pair's
        cell = next(
            (r, c)
            for r, line in enumerate(pair.cells)
            for c, x in enumerate(line)
            if path.parent.name in x.jobs
        )
        expected.setdefault(cell, {})[str(payload["provenance"]["seed"])] = 100 * share
    assert expected
    for (r, c), per_seed in expected.items():
        assert pair.cells[r][c].per_seed == pytest.approx(per_seed)
    # job 0, completed without a matrix: flagged in its cell, not counted as failed
    flagged = [x for line in pair.cells for x in line if x.unscored]
    assert [x.unscored for x in flagged] == [["0"]] and not flagged[0].failed
    # the pair's orderings: a paired t over the seeds both cells have (scipy as the reference)
    tested = [o for o in pair.orderings if o.diff.p is not None]
    assert tested
    for ordering in tested:
        a, b = pair.cells[ordering.a[0]][ordering.a[1]], pair.cells[ordering.b[0]][ordering.b[1]]
        seeds = ordering.diff.seeds
        x, y = [a.per_seed[s] for s in seeds], [b.per_seed[s] for s in seeds]
        assert ordering.diff.p == pytest.approx(stats.ttest_rel(x, y).pvalue)
    text = render(sweep, "dmnet-table1", class_groups=groups)
    assert "pair: pair accuracy of car vs boat" in text and "pair confusion is 100 − this" in text
    assert "Paper orderings on the pair (pair accuracy) (9 declared)" in text
    with pytest.raises(ConfigError, match="expected NAME=CLASS_A,CLASS_B"):
        parse_class_pairs(["pair=car,boat,sky"])
