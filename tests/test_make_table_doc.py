"""make_table --doc (scripts/make_table.py, python -m dynaseg.cli.make_table): one section per
argument, TABLE=DIRS choosing its layout; --by-backbone and --at-step N, the views of a sweep."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dynaseg.cli.make_table import main
from dynaseg.errors import UserError
from dynaseg.reporting.doc_sections import DOC_BEGIN, DOC_END
from fabricated_sweep import (
    BACKBONE_VALUES,
    make_backbone_sweep,
    make_fabricated_sweep,
    write_curve_run,
)


def test_doc_sections_take_their_layout_from_a_table_prefix(tmp_path: Path) -> None:
    sweep = make_fabricated_sweep(tmp_path / "a")
    doc = tmp_path / "ablations.md"
    doc.write_text(f"# A\n\n{DOC_BEGIN}\nold\n{DOC_END}\n")
    args = [f"dmnet-table5={sweep}", str(sweep), "--doc", str(doc)]
    assert main(args) == 0
    text = doc.read_text()
    first, second = text.split("\n### ")[1:3]
    assert first.startswith("DMNet Table 5")  # the prefix chose the layout
    assert second.startswith("DMNet Table 1")  # no prefix: found from the sweep's experiment
    assert "old" not in text

    # --variant ends the headings; the sections written before stay (other headings)
    assert main([str(sweep), "--doc", str(doc), "--variant", "end to end"]) == 0
    headings = [line for line in doc.read_text().splitlines() if line.startswith("### ")]
    assert len(headings) == 3 and headings[:2] == [
        "### " + first.splitlines()[0],
        "### " + second.splitlines()[0],
    ]
    assert headings[2] == headings[1] + ", end to end"


def table_csv(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    assert main([*args, "--paper", "dmnet-table1-mini", "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def cell(rows: list[dict[str, str]], row: str, table_metric: str = "mIoU") -> dict[str, str]:
    return next(
        r
        for r in rows
        if r["row"] == row and r["column"] == "zoom 0.6-1.6" and r["metric"] == table_metric
    )


def test_by_backbone_pairs_cells_over_backbones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--by-backbone (protocol E4): a cell holds one mean over head seeds per backbone."""
    sweep = make_backbone_sweep(tmp_path)
    by_seed = cell(table_csv([str(sweep)], capsys), "Regular {1,3,5,7}")
    assert by_seed["seeds"] == "1 2 3" and by_seed["n"] == "3"  # head seeds, backbones averaged
    rows = table_csv([str(sweep), "--by-backbone"], capsys)
    for metric in ("mIoU", "mIoU over scale-decided"):
        regular = cell(rows, "Regular {1,3,5,7}", metric)
        means = [np.mean(BACKBONE_VALUES[("regular", b)]) for b in range(3)]
        assert regular["seeds"] == "0 1 2"
        assert [float(v) for v in regular["values"].split()] == pytest.approx(means, abs=1e-4)
        assert cell(rows, "Dynamic {1,3,5,7}", metric)["seeds"] == "0 1 2"
        dyn = [np.mean(BACKBONE_VALUES[("dynamic", b)]) for b in range(3)]
        assert float(regular["diff"]) == pytest.approx(np.mean(means) - np.mean(dyn), abs=1e-4)
        # the only contrast with runs on both sides: a family of one, paired over 3 backbones
        p = stats.ttest_rel(means, dyn).pvalue
        assert float(regular["p_holm"]) == pytest.approx(p, abs=1e-6)
    doc = tmp_path / "ablations.md"
    doc.write_text(f"{DOC_BEGIN}\n{DOC_END}\n")
    assert (
        main([str(sweep), "--paper", "dmnet-table1-mini", "--by-backbone", "--doc", str(doc)]) == 0
    )
    assert "(seeds 0–2), paired over backbones (head seeds averaged per backbone_seed)" in (
        doc.read_text()
    )


def test_at_step_reads_the_validation_of_that_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--at-step N (protocol E3 (b)): every table from the validation after N steps."""
    write_curve_run(tmp_path / "sweep/0", 1, {300: 0.40, 600: 0.50}, 0.55)
    write_curve_run(tmp_path / "sweep/1", 2, {300: 0.44, 600: 0.52}, 0.57)
    sweep = str(tmp_path / "sweep")
    final = cell(table_csv([sweep], capsys), "Regular {1,3,5,7}")
    assert final["values"] == "55.0000 57.0000"
    rows = table_csv([sweep, "--at-step", "300"], capsys)
    assert cell(rows, "Regular {1,3,5,7}")["values"] == "40.0000 44.0000"
    scale = cell(rows, "Regular {1,3,5,7}", "mIoU over scale-decided")
    assert scale["values"] == "40.0000 44.0000"  # bird not logged at 300: balloon alone
    rows = table_csv([sweep, "--at-step", "600"], capsys)
    assert cell(rows, "Regular {1,3,5,7}")["values"] == "50.0000 52.0000"
    rows = table_csv([sweep, "--at-step", "900"], capsys)  # no validation there: missing
    assert cell(rows, "Regular {1,3,5,7}")["n"] == "0"
    with pytest.raises(UserError, match="--at-step 0: expected a number of optimizer steps"):
        main([sweep, "--at-step", "0"])
