"""dynaseg.reporting on a fabricated multirun directory: a failed run, a missing seed, paper layout."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dynaseg.cli.make_table import main
from dynaseg.errors import UserError
from dynaseg.reporting.cell_text import format_cell
from dynaseg.reporting.doc_sections import DOC_BEGIN, DOC_END, doc_section, update_doc
from dynaseg.reporting.paper_tables import build_paper_table, find_spec, matches, paper_specs
from dynaseg.reporting.rendering import render
from dynaseg.reporting.sweeps import load_sweep
from dynaseg.run.hydra_callbacks import MultirunSummary
from fabricated_sweep import (
    EXPERIMENT,
    make_checkpoint_sweep,
    make_fabricated_sweep,
    write_job,
    write_multirun,
)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """6 jobs = 3 filter types x seeds 1, 2: job 3 (depthwise, seed 2) never ran, job 5 failed."""
    return make_fabricated_sweep(tmp_path)


def test_load_sweep_lists_every_job_including_the_one_that_never_started(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir)
    assert [j.job for j in sweep.jobs] == ["0", "1", "2", "3", "4", "5"]
    assert [j.status for j in sweep.jobs] == ["completed"] * 3 + ["missing", "completed", "failed"]
    assert sweep.experiment == EXPERIMENT and sweep.seeds == [1, 2]
    # the job that never started is known from multirun.yaml, with its overrides and settings
    missing = sweep.jobs[3]
    assert "seed=2" in missing.overrides and missing.seed == 2
    assert missing.settings["model"]["net"]["decode_head"]["filter_type"] == "depthwise"
    assert sweep.jobs[5].error == "RuntimeError: boom"


def test_seeds_are_listed_in_numeric_order(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for num, seed in enumerate([10, 6, 9, 7, 8]):
        write_job(sweep, num, "dynamic", seed, 0.8)
    assert load_sweep(sweep).seeds == [6, 7, 8, 9, 10]  # was 10, 6, 7, 8, 9 (sorted as text)
    assert "- Jobs: 5 (5 completed); seeds: 6, 7, 8, 9, 10" in doc_section(load_sweep(sweep))


def test_paper_layout_mean_spread_and_flags(sweep_dir: Path) -> None:
    name, spec = find_spec(experiment=EXPERIMENT)
    assert name == "dmnet-table1"
    table = build_paper_table(load_sweep(sweep_dir), name, spec)
    assert table.row_labels == ["Regular conv", "Depthwise conv", "Ours (dynamic)"]
    assert table.col_labels == ["{1}", "{1,3}", "{1,3,5}", "{1,3,5,7}"]
    regular, depthwise, dynamic = (row[3] for row in table.cells)
    assert regular.mean == pytest.approx(71.0) and regular.std == pytest.approx(2**0.5)
    assert regular.flags == [] and regular.paper == 72.37
    # ± the 95 % t interval: t(0.975, 1) * sqrt(2) / sqrt(2) = 12.706
    assert regular.ci == pytest.approx(12.7062, abs=1e-4)
    assert format_cell(regular) == "71.00 ± 12.71 (n=2) / 72.37"
    assert depthwise.values == pytest.approx([69.0]) and depthwise.missing == ["3"]
    assert format_cell(depthwise) == "69.00 / 71.88 **MISSING: job 3; 1/2 seeds: no CI**"
    assert dynamic.values == pytest.approx([80.0]) and dynamic.failed == ["5"]
    assert format_cell(dynamic) == "80.00 / 78.21 **FAILED: job 5; 1/2 seeds: no CI**"
    assert format_cell(table.cells[0][0]) == "not run / 70.76"
    assert table.unmatched == []


def test_markdown_and_csv_never_drop_a_run(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir)
    text = render(sweep)
    assert "| Kernel size | {1} | {1,3} | {1,3,5} | {1,3,5,7} |" in text
    assert "| Ours (dynamic) | not run / 77.75 |" in text
    assert "4 of 6 jobs completed; not completed: 3, 5" in text
    assert "failed (RuntimeError: boom)" in text and "missing (job never started)" in text
    # one seed per compared cell: every ordering that ran is unresolved, never "k of n pairs"
    assert (
        "Paper orderings (9 declared): 0 resolved-agree, 0 resolved-disagree, 2 unresolved, "
        "7 not run." in text
    )
    assert "Pairs in the paper's order" not in text

    rows = list(csv.DictReader(io.StringIO(render(sweep, fmt="csv"))))
    assert len(rows) == 12  # 3 rows x 4 columns
    cell = next(r for r in rows if r["row"] == "Ours (dynamic)" and r["column"] == "{1,3,5,7}")
    assert cell["n"] == "1" and cell["mean"] == "80.0000" and cell["paper"] == "78.21"
    assert cell["flags"] == "FAILED: job 5; 1/2 seeds: no CI"

    flat = list(csv.DictReader(io.StringIO(render(load_sweep(sweep_dir), "dmnet-table1", "csv"))))
    assert flat == rows


def test_match_values_take_alternatives() -> None:
    """``{one_of: [...]}``: a feature index written as a stage number (runs before issue #30) or
    as its role name (since) selects the same row."""
    assert matches(4, {"one_of": [4, "context"]}) and matches("context", {"one_of": [4, "context"]})
    assert not matches(3, {"one_of": [4, "context"]}) and not matches(None, {"one_of": [4]})
    assert matches([1, 3], [1, 3]) and not matches([1, 3], [1, 3, 5])  # lists compare whole
    spec = paper_specs()["dmnet-table1-mini"]
    dynamic = next(r for r in spec["rows"] if r["label"] == "Dynamic {1,3,5,7}")
    assert dynamic["match"]["model.net.decode_head.context_index"] == {"one_of": [4, "context"]}


def test_paper_numbers_are_rectangular() -> None:
    for name, spec in paper_specs().items():
        assert len(spec["paper"]) == len(spec["rows"]), name
        assert all(len(r) == len(spec["columns"]) for r in spec["paper"]), name


def test_doc_section_and_update(sweep_dir: Path, tmp_path: Path) -> None:
    section = doc_section(load_sweep(sweep_dir))
    assert section.startswith("### DMNet Table 1")
    assert section.splitlines()[0].endswith("(seeds 1, 2)")  # tells replications apart
    assert f"python src/train.py -m experiment={EXPERIMENT}" in section
    assert "OMP_NUM_THREADS=2" in section
    # 5 jobs with provenance: wall 60+0+60+1+60+2+60+4+60+5 = 312 s, CPU 512 s
    assert "5 min 12 s wall time, 8 min 32 s CPU time" in section and "seeds: 1, 2" in section
    doc = tmp_path / "ablations.md"
    doc.write_text(f"# Ablations\n\nintro\n\n{DOC_BEGIN}\nold\n{DOC_END}\n\nend\n")
    update_doc(doc, [section])
    text = doc.read_text()
    assert text.startswith("# Ablations\n\nintro") and text.endswith("end\n") and "old" not in text
    assert section.strip() in text

    # a second call replaces the section with its heading in place and keeps the others
    other = "### Another table (seeds 6–10)\n\n| a |\n"
    update_doc(doc, [other])
    update_doc(doc, [section.replace("| Regular conv |", "| Regular conv (new) |")])
    text = doc.read_text()
    assert text.count(section.splitlines()[0]) == 1 and "| Regular conv (new) |" in text
    assert text.index(section.splitlines()[0]) < text.index("### Another table")
    assert other.strip() in text and text.endswith("end\n")


def test_not_a_sweep_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_sweep(tmp_path / "nope")
    with pytest.raises(UserError, match="neither multirun.yaml"):
        load_sweep(tmp_path)
    with pytest.raises(UserError, match="unknown paper table"):
        find_spec("dmnet-table99")


def test_callback_prints_the_summary_then_fails_the_sweep(
    sweep_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:  # jobs 3 (missing) and 5 (failed)
        MultirunSummary().on_multirun_end(
            OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
        )
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert f"Sweep {sweep_dir}" in out and "| Regular conv |" in out
    assert err.startswith("error: 2 of 6 jobs did not complete: job 3 (missing), 5 (failed); ")


def test_callback_after_a_complete_sweep_exits_normally(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "regular", 1, 0.70)
    MultirunSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert "1 of 1 jobs completed" in capsys.readouterr().out


def test_multi_line_error_with_pipes_keeps_the_markdown_table_intact(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "regular", 1, 0.70)
    write_job(sweep, 1, "dynamic", 1, None, error="ValueError: a | b\n  line two\n\tthree")
    text = render(load_sweep(sweep), runs=True)
    table = [line for line in text.splitlines() if line.startswith("| 1 |")]
    assert len(table) == 1, text  # one row: the newlines did not break it
    assert "failed (ValueError: a \\| b line two three)" in table[0]
    # every row of the job table has as many unescaped separators as the header
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| job |") or line[:4] in ("| 0 ", "| 1 ")
    ]
    assert len({line.replace("\\|", "").count("|") for line in rows}) == 1


def test_selected_jobs_of_a_second_sweep_fill_a_cell(sweep_dir: Path, tmp_path: Path) -> None:
    other = make_fabricated_sweep(tmp_path / "other")
    sweep = load_sweep([sweep_dir, f"{other}:4"])
    assert [j.job for j in sweep.jobs][-1] == "sweep/4" and len(sweep.jobs) == 7
    assert sweep.experiment == EXPERIMENT  # the selection does not vote for the experiment
    assert sweep.commands[1].endswith("# job 4 of this sweep")
    table = build_paper_table(sweep, *find_spec("dmnet-table1"))
    cell = table.cells[2][3]  # the seed-1 run twice: one seed, flagged, not "± 0.00, n=2"
    assert cell.values == pytest.approx([80.0]) and cell.jobs == ["sweep/4", "sweep/4"]
    assert "seed 1 run 2x (averaged)" in cell.flags and "±" not in format_cell(cell)


def test_jobs_in_a_preset_subdir_are_matched_by_their_overrides(sweep_dir: Path) -> None:
    # experiment=mini_backbone names its job directories by data config, not by job number:
    # the finished jobs must count as those jobs, not as extra ones beside "never started" ones
    (sweep_dir / "0").rename(sweep_dir / "regular-seed1")
    (sweep_dir / "4").rename(sweep_dir / "dynamic-seed1")
    sweep = load_sweep(sweep_dir)
    assert [j.job for j in sweep.jobs] == ["regular-seed1", "1", "2", "3", "dynamic-seed1", "5"]
    assert [j.status for j in sweep.jobs] == ["completed"] * 3 + ["missing", "completed", "failed"]
    assert sweep.jobs[0].metric() == pytest.approx(0.70) and sweep.jobs[4].seed == 1


# provenance.hardware as dynaseg.environment.hardware_info records it, on a made-up machine
SETUP = {
    "platform": "Linux-6.8-x86_64",
    "python": "3.12.3",
    "cpus": 2,
    "cpu_model": "AMD EPYC 7B13",
    "processor": "x86_64",
    "isa_flags": ["avx", "avx2", "fma"],
    "cpu_capability": "AVX2",
    "torch": "2.14.1",
    "lightning": "2.6.0",
    "onednn": "3.12.0",
    "mkl": "2024.2",
    "torch_threads": 2,
    "interop_threads": 2,
    "omp_num_threads": "2",
    "mkl_num_threads": None,
    "gpus": [],
    "cuda": None,
}
AVX512 = {"isa_flags": ["avx", "avx2", "avx512f", "fma"], "cpu_capability": "AVX512"}


def two_jobs(tmp_path: Path, second: dict, failed_elsewhere: bool = False) -> Path:
    """Two job directories of dynamic DMNet, seeds 1 and 2, the second on ``SETUP | second``;
    ``failed_elsewhere``: a third job, failed, on an AVX-512 machine."""
    sweep = tmp_path / "two_jobs"
    write_multirun(sweep, {"seed": "1,2,3" if failed_elsewhere else "1,2"})
    write_job(sweep, 0, "dynamic", 1, 0.80, hardware=SETUP)
    write_job(sweep, 1, "dynamic", 2, 0.82, hardware={**SETUP, **second})
    if failed_elsewhere:
        write_job(sweep, 2, "dynamic", 3, None, hardware={**SETUP, **AVX512})
    return sweep


def test_a_table_from_two_cpu_setups_is_flagged(tmp_path: Path) -> None:
    sweep = load_sweep(two_jobs(tmp_path, AVX512))
    flag = (
        "MIXED HARDWARE: the cells come from 2 CPU/library setups (1 run(s) on AMD EPYC 7B13, "
        "AVX2 (avx avx2 fma), torch 2.14.1, oneDNN 3.12.0, MKL 2024.2, 2 threads; 1 run(s) on "
        "AMD EPYC 7B13, AVX512 (avx avx2 avx512f fma), torch 2.14.1, oneDNN 3.12.0, MKL 2024.2, "
        "2 threads); they repeat only statistically, not exactly (docs/reproducing.md)"
    )
    text = render(sweep, "dmnet-table1")
    assert text.startswith(f"**{flag}**\n\n**DMNet Table 1")  # above the paper table
    assert text.count("MIXED HARDWARE") == 1
    assert render(sweep, "dmnet-table1", "latex").startswith(f"% {flag}\n")
    section = doc_section(sweep)
    assert section.count("MIXED HARDWARE") == 1
    assert "- Hardware: 2 CPUs (AMD EPYC 7B13, AVX2 kernels), torch threads 2, GPU: none" in section


@pytest.mark.parametrize(
    "second",
    [{"torch_threads": 1}, {"torch": "2.15.0"}, {"onednn": "3.13.1"}, {"cpu_model": "Intel"}],
    ids=["threads", "torch", "onednn", "cpu"],
)
def test_any_kernel_deciding_field_makes_another_setup(tmp_path: Path, second: dict) -> None:
    assert "2 CPU/library setups" in render(load_sweep(two_jobs(tmp_path, second)))


def test_one_setup_is_not_flagged(tmp_path: Path, sweep_dir: Path) -> None:
    """Fields that do not pick kernels may differ; a failed run on other hardware has no cell;
    runs recorded before the CPU setup was (sweep_dir's) are not compared."""
    same = {"cpus": 4, "omp_num_threads": None, "platform": "Linux-6.9-x86_64"}
    sweep = load_sweep(two_jobs(tmp_path, same, failed_elsewhere=True))
    assert "MIXED" not in render(sweep) + render(sweep, "dmnet-table1", "latex")
    assert "MIXED" not in doc_section(sweep) + render(load_sweep(sweep_dir))


def test_checkpoint_last_or_best_reads_that_checkpoints_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """make_table --checkpoint (issue 31): last (default) reads each run's last checkpoint — the
    test score where the run tested it, else its last validation; best reads the best
    checkpoint's validation mIoU (reported_checkpoint.best), or its test score where the run
    tested best. A run without a best score is flagged, not counted as failed."""
    sweep = make_checkpoint_sweep(tmp_path)

    def cells(*flags: str) -> dict[str, dict[str, str]]:
        assert main([str(sweep), "--paper", "dmnet-table1", "--format", "csv", *flags]) == 0
        rows = csv.DictReader(io.StringIO(capsys.readouterr().out))
        return {r["row"]: r for r in rows if r["column"] == "{1,3,5,7}"}

    last = cells()
    assert last == cells("--checkpoint", "last")
    regular, dynamic = last["Regular conv"], last["Ours (dynamic)"]
    assert (regular["values"], regular["checkpoint"]) == ("71.0000 73.0000", "last")  # tested last
    assert dynamic["values"] == "80.0000 82.0000"  # job 2 tested best: its last validation
    best = cells("--checkpoint", "best")
    regular, dynamic = best["Regular conv"], best["Ours (dynamic)"]
    assert (regular["values"], regular["checkpoint"]) == ("74.0000 75.0000", "best")
    assert dynamic["values"] == "86.0000"  # job 2's test of its best checkpoint
    assert dynamic["flags"] == "no score of this checkpoint: job 3; 1/2 seeds: no CI"

    assert main([str(sweep), "--paper", "dmnet-table1", "--checkpoint", "best"]) == 0
    text = capsys.readouterr().out
    table, _, rest = text.partition("\n\nCheckpoint: best — each run's best checkpoint")
    assert "| Regular conv | not run / 70.76 | not run / 71.41 | not run / 72.65 | 74.50 ±" in table
    assert rest  # the choice is printed under the table
    # the job list reads the same checkpoint: job 3 has no best score
    assert "| 3 | completed | `model.net.decode_head.filter_type=dynamic seed=2` | 2 |  |" in rest
    assert main([str(sweep), "--paper", "dmnet-table1", "--no-runs"]) == 0
    assert "\n\nCheckpoint: last — each run's last checkpoint" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(sweep), "--checkpoint", "final"])
    assert "invalid choice: 'final'" in capsys.readouterr().err
    # --at-step reads validations, no checkpoint's
    with pytest.raises(UserError, match="--at-step 300 .* --checkpoint best does not apply"):
        main([str(sweep), "--at-step", "300", "--checkpoint", "best"])
