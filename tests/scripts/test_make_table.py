"""scripts/make_table.py and python -m dynaseg.cli.make_table, both thin over
dynaseg.cli.make_table (a real sweep: test_ablation_experiments)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fabricated_sweep import make_fabricated_sweep
from helpers import ROOT


def run(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    """The script, or (``module``) the same command as ``python -m dynaseg.cli.make_table``."""
    entry = ["-m", "dynaseg.cli.make_table"] if module else ["scripts/make_table.py"]
    return subprocess.run([sys.executable, *entry, *args], cwd=ROOT, capture_output=True, text=True)


def test_markdown_csv_and_doc(tmp_path: Path) -> None:
    sweep = make_fabricated_sweep(tmp_path)
    md = run(str(sweep), "--paper", "dmnet-table1")
    assert md.returncode == 0, md.stderr
    assert (
        "| Depthwise conv | not run / 70.59 | not run / 71.12 | not run / 72.24 | 69.00 / 71.88 **MISSING: job 3; 1/2 seeds: no CI** |"
        in md.stdout
    )
    assert "4 of 6 jobs completed; not completed: 3, 5" in md.stdout

    csv_out = run(str(sweep), "--format", "csv", "--no-runs")
    assert csv_out.returncode == 0 and csv_out.stdout.count("\n") == 13  # header + 12 cells

    doc = tmp_path / "doc.md"
    done = run(str(sweep), "--doc", str(doc), module=True)
    assert done.returncode == 0, done.stderr
    assert "### DMNet Table 1" in doc.read_text() and "wrote 1 section(s)" in done.stdout


def test_bad_directory_is_one_line_error(tmp_path: Path) -> None:
    proc = run(str(tmp_path / "nope"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: sweep directory '{tmp_path / 'nope'}' does not exist"
