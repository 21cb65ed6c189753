"""Verdicts over backbones (protocol E4): head seeds averaged per backbone, paired by backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dynaseg.analysis.backbone_factor import by_backbone
from dynaseg.reporting.paper_tables import build_tables
from dynaseg.reporting.sweeps import load_sweep
from fabricated_sweep import BACKBONE_VALUES, make_backbone_sweep


def test_cells_are_backbone_means_and_orderings_pair_backbones(tmp_path: Path) -> None:
    sweep = by_backbone(load_sweep(make_backbone_sweep(tmp_path)))
    assert sweep.seeds == [0, 1, 2]
    (table,) = build_tables(sweep, "dmnet-table1-mini", class_groups={})[:1]
    regular = table.cells[table.row_labels.index("Regular {1,3,5,7}")][0]
    per_backbone = {b: np.mean(BACKBONE_VALUES[("regular", b)]) for b in range(3)}
    assert regular.runs.per_seed == pytest.approx({str(b): v for b, v in per_backbone.items()})
    assert regular.n == 3
    ordering = next(
        o
        for o in table.orderings
        if o.label_a == "Dynamic {1,3,5,7} @ zoom 0.6-1.6"
        and o.label_b == "Regular {1,3,5,7} @ zoom 0.6-1.6"
    )
    dyn = [np.mean(BACKBONE_VALUES[("dynamic", b)]) for b in range(3)]
    reg = [np.mean(BACKBONE_VALUES[("regular", b)]) for b in range(3)]
    assert ordering.diff.n == 3 and ordering.diff.mean == pytest.approx(np.mean(dyn) - np.mean(reg))
    assert ordering.diff.p == pytest.approx(stats.ttest_rel(dyn, reg).pvalue)
