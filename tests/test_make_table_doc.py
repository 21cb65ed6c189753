"""make_table --doc (scripts/make_table.py, python -m dynaseg.cli.make_table): one section per
argument, TABLE=DIRS choosing its layout."""

from __future__ import annotations

from pathlib import Path

from dynaseg.cli.make_table import main
from dynaseg.reporting.doc_sections import DOC_BEGIN, DOC_END
from fabricated_sweep import make_fabricated_sweep


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
