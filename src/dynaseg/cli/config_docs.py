"""Rewrite the "Checked values" table of docs/configs.md from the typed config schemas.

    python scripts/config_docs.py                  # docs/configs.md of this checkout
    python scripts/config_docs.py --doc OTHER.md   # the table between the same markers elsewhere

``python -m dynaseg.cli.config_docs`` and ``dynaseg-config-docs`` are the same command. The table
is :func:`dynaseg.config_schema.schema_markdown`; tests/test_config_schema.py keeps the committed
one equal to it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.config_schema import DOC_BEGIN, DOC_END, schema_markdown
from dynaseg.environment import repo_root
from dynaseg.errors import ConfigError


def write_schema_table(doc: Path) -> None:
    """Replace the table between :data:`~dynaseg.config_schema.DOC_BEGIN` and ``DOC_END`` in
    ``doc`` with the schemas' current one."""
    text = doc.read_text() if doc.is_file() else ""
    if DOC_BEGIN not in text or DOC_END not in text:
        raise ConfigError(f"{doc}: expected the markers {DOC_BEGIN!r} and {DOC_END!r}")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    doc.write_text(f"{head}{DOC_BEGIN}\n{schema_markdown()}\n{DOC_END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line (``argv``, else ``sys.argv``) and rewrite the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--doc", type=Path, help="the document (default: docs/configs.md of the repository)"
    )
    args = parser.parse_args(argv)
    doc = args.doc or repo_root() / "docs" / "configs.md"
    write_schema_table(doc)
    print(f"wrote the checked-values table of {doc}")
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
