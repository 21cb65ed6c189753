"""Tables at an earlier validation (protocol E3 (b)) from the runs' CSV logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynaseg.analysis.learning_curve import at_step
from dynaseg.reporting.paper_tables import build_tables
from dynaseg.reporting.sweeps import load_sweep
from fabricated_sweep import write_curve_run


def test_tables_at_an_earlier_step_read_the_csv_validation(tmp_path: Path) -> None:
    write_curve_run(tmp_path / "sweep/0", 1, {300: 0.40, 600: 0.50}, 0.55)
    write_curve_run(tmp_path / "sweep/1", 2, {300: 0.44, 600: 0.52}, 0.57)
    write_curve_run(tmp_path / "sweep/2", 3, {600: 0.51}, 0.56)  # no validation at 300
    sweep = load_sweep(tmp_path / "sweep")
    early = at_step(sweep, 300)
    assert [j.status for j in early.jobs] == ["completed", "completed", "missing"]
    assert "after step 300" in early.jobs[2].error
    tables = build_tables(early, "dmnet-table1-mini")
    regular = tables[0].cells[tables[0].row_labels.index("Regular {1,3,5,7}")][0]
    assert regular.values == pytest.approx([40.0, 44.0])
    scale = next(t for t in tables if t.group == "scale-decided")
    cell = scale.cells[scale.row_labels.index("Regular {1,3,5,7}")][0]
    assert cell.values == pytest.approx([40.0, 44.0])  # bird absent at 300: balloon alone
    mid = build_tables(at_step(sweep, 600), "dmnet-table1-mini")[0]
    assert mid.cells[1][0].values == pytest.approx([50.0, 52.0, 51.0])
    final = build_tables(sweep, "dmnet-table1-mini")[0]  # the final validation, unchanged
    assert final.cells[1][0].values == pytest.approx([55.0, 57.0, 56.0])
