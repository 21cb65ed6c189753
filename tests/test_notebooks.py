"""notebooks/: committed without outputs; both run headless (nbclient) against a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from dynaseg import notebooks
from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def png_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [
        out["data"]["image/png"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "data" in out and "image/png" in out["data"]
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


@pytest.mark.slow  # a Jupyter kernel; fast: test_palettes.py (figures = PNGs)
def test_inspect_checkpoint_notebook_shows_every_figure(
    tiny_wandb_run: Path, tmp_path: Path
) -> None:
    checkpoint = json.loads((tiny_wandb_run / "metrics.json").read_text())["best_checkpoint"]
    nb = nbformat.read(ROOT / "notebooks/inspect_checkpoint.ipynb", as_version=4)
    notebooks.inject_parameters(
        nb, {"CHECKPOINT": checkpoint, "EVAL_IMAGES": 4, "SAVE_DIR": str(tmp_path / "figs")}
    )
    # Inspect the figure objects the notebook made (a check cell appended to this copy only).
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json, numpy as np\n"
            "fig = figures['dmnet_filters']\n"
            "diff = [np.nanmax(np.abs(ax.images[0].get_array())) for ax in fig.axes\n"
            "        if ax.get_title() == 'A − B']\n"
            "print(json.dumps({'figures': sorted(figures), 'suptitle': fig.get_suptitle(),\n"
            "                  'max_abs_diff': [float(d) for d in diff]}))"
        )
    )
    notebooks.run_cells(nb, ROOT / "notebooks", timeout=600)

    assert len(png_outputs(nb)) == 4  # predictions, per-class, confusion matrix, DMNet filters
    report = json.loads(nb.cells[-1].outputs[-1]["text"])
    assert report["figures"] == ["confusion_matrix", "dmnet_filters", "per_class", "predictions"]
    assert report["suptitle"].startswith("DMNet generated filters")
    # one A − B panel per branch of the quick-start DMNet (filters 1, 3, 5, 7), none all zero:
    # the two images' filters differ
    assert len(report["max_abs_diff"]) == 4 and min(report["max_abs_diff"]) > 0
    for name in report["figures"]:
        image = Image.open(tmp_path / "figs" / f"{name}.png")
        assert image.width > 200 and image.height > 200


@pytest.mark.slow  # a Jupyter kernel; fast tier: test_visualization.py reads run metrics in-process
def test_compare_runs_notebook_reads_metrics_files(tiny_wandb_run: Path, tmp_path: Path) -> None:
    nb = notebooks.execute_notebook(
        ROOT / "notebooks/compare_runs.ipynb",
        {"RUNS": [str(tiny_wandb_run)], "SAVE_DIR": str(tmp_path)},
        timeout=600,
    )
    assert len(png_outputs(nb)) == 1
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    miou = json.loads((tiny_wandb_run / "metrics.json").read_text())["val"]["mIoU"]
    assert f"mIoU {miou}" in text
    assert Image.open(tmp_path / "run_comparison.png").width > 200
