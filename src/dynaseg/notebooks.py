"""Run a notebook headless (nbclient, no Jupyter server), with parameters, like a script.

Parameters go into a cell inserted right after the notebook's cell tagged ``parameters`` (the
papermill convention), so they override its defaults. The command line is
:mod:`dynaseg.cli.run_notebook` (``scripts/run_notebook.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dynaseg.errors import ConfigError


def parse_parameter(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` → ``(NAME, value)``; VALUE a Python literal, otherwise a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise ConfigError(f"-p expects NAME=VALUE with a Python identifier, got {text!r}")
    try:
        return name, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw


def inject_parameters(nb: Any, parameters: Mapping[str, Any]) -> None:
    """Insert ``NAME = value`` assignments right after the cell tagged ``parameters``."""
    import nbformat

    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if not tagged:
        raise ConfigError("the notebook has no cell tagged 'parameters' to override")
    source = "# Injected parameters\n" + "\n".join(
        f"{name} = {value!r}" for name, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, cell)


def run_cells(nb: Any, workdir: str | Path, timeout: int = 1200) -> Any:
    """Execute every cell of the notebook node ``nb`` in a fresh ``python3`` kernel started in
    ``workdir``; raises ``nbclient.exceptions.CellExecutionError`` if a cell fails."""
    from nbclient import NotebookClient

    resources = {"metadata": {"path": str(workdir)}}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    return nb


def execute_notebook(
    path: str | Path,
    parameters: Mapping[str, Any] | None = None,
    timeout: int = 1200,
    output: str | Path | None = None,
) -> Any:
    """Execute the notebook at ``path`` (in its directory) with ``parameters``; returns the
    executed notebook node and writes it to ``output`` if given."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if parameters:
        inject_parameters(nb, parameters)
    run_cells(nb, path.parent, timeout)
    if output is not None:
        nbformat.write(nb, Path(output))
    return nb
