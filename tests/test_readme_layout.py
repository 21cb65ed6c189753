"""README's "Layout" block against the tree, so it cannot go stale: every path it lists exists,
and every package module and subpackage, config group, script and notebook is listed.

The block's format: one entry per line, ``PATH  description`` (two or more spaces before the
description), a path nested under the directory entry above it by two spaces of indentation;
lines indented to the description column (20+ spaces) continue the description. A path may use
``{a,b}`` (each alternative) and ``<name>`` (any name). A directory counts as listed where it is
an entry or named as ``dir/`` in a description of an entry at or above it; a module where it is
an entry or named as ``name.py`` in its directory's description or a sibling file's.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "src" / "dynaseg"
# Directories listed as one entry, their modules described by concern, not by file name
# (cli/: one module per script, checked by test_every_script_has_its_command).
DESCRIBED_AS_A_WHOLE = {PACKAGE / "reporting", PACKAGE / "cli"}
DESCRIPTION_COLUMN = 20


@dataclass
class Entry:
    paths: list[Path]  # absolute, after expanding {a,b}; <name> still in them
    description: str
    parent: Entry | None
    raw_dir: bool = False  # a directory entry (``path/``)
    children: list[Entry] = field(default_factory=list)


def expand_braces(text: str) -> list[str]:
    parts = re.split(r"\{([^{}]*)\}", text)
    literals, choices = parts[0::2], [c.split(",") for c in parts[1::2]]
    return [
        "".join(itertools.chain.from_iterable(zip(literals, combo, strict=False))) + literals[-1]
        for combo in itertools.product(*choices)
    ]


def layout_entries() -> list[Entry]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\n\n```\n(.*?)^```", text, re.S | re.M)
    assert match, "README.md has no '## Layout' section with a code block"
    entries: list[Entry] = []
    stack: list[tuple[int, Entry]] = []  # (indent, directory entry)
    for line in match.group(1).splitlines():
        indent = len(line) - len(line.lstrip())
        if indent >= DESCRIPTION_COLUMN:
            entries[-1].description += " " + line.strip()
            continue
        head, _, description = line.strip().partition("  ")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else None
        base = parent.paths[0] if parent else ROOT
        paths = [base / p for p in expand_braces(head)]
        entry = Entry(paths, description.strip(), parent, raw_dir=head.endswith("/"))
        if parent:
            parent.children.append(entry)
        entries.append(entry)
        if entry.raw_dir:
            stack.append((indent, entry))
    return entries


def existing(path: Path) -> list[Path]:
    """The files a listed path stands for (``<name>`` matches any name)."""
    rel = path.relative_to(ROOT).as_posix()
    return (
        sorted(ROOT.glob(re.sub(r"<[^>]+>", "*", rel))) if "<" in rel else [path][: path.exists()]
    )


def mentioned(description: str, suffix: str) -> set[str]:
    """``name.py`` / ``dir/`` / ``a/b/`` tokens of a description."""
    if suffix == "/":
        return set(re.findall(r"(?<![\w./-])((?:\w+/)+)(?=[\s),;:]|$)", description))
    return set(re.findall(rf"(?<![\w./-])([\w/*]+\{suffix})\b", description))


ENTRIES = layout_entries()


def test_every_listed_path_exists() -> None:
    missing = [p.relative_to(ROOT).as_posix() for e in ENTRIES for p in e.paths if not existing(p)]
    assert not missing, f"README layout lists paths that do not exist: {missing}"


def test_every_module_named_in_a_description_exists() -> None:
    missing = []
    for entry in ENTRIES:
        base = entry.paths[0] if entry.raw_dir else entry.paths[0].parent
        for name in mentioned(entry.description, ".py"):
            if not list(base.glob(name)):
                missing.append(f"{name} (under {base.relative_to(ROOT)})")
    assert not missing, f"README layout names modules that do not exist: {missing}"


def names_listed_in(directory: Path) -> set[str]:
    """Module and directory names the layout gives for ``directory``: its child entries and the
    names in its own description and its files' descriptions."""
    names: set[str] = set()
    for entry in ENTRIES:
        if not entry.raw_dir or directory not in entry.paths:
            continue
        texts = [entry.description]
        for child in entry.children:
            for path in child.paths:
                names.add(path.relative_to(directory).parts[0])
            if not child.raw_dir:
                texts.append(child.description)
        for text in texts:
            names |= {n.split("/")[0] for n in mentioned(text, ".py") | mentioned(text, "/")}
            names |= {n.split("/")[0] + "/" for n in mentioned(text, "/")}
    return {n.rstrip("/") for n in names}


def python_dirs(directory: Path) -> list[Path]:
    return [
        d
        for d in sorted(directory.iterdir())
        if d.is_dir() and d.name != "__pycache__" and any(d.rglob("*.py"))
    ]


def package_dirs() -> list[Path]:
    """The package and its subpackages (theirs are named in their entry: heads/*.py)."""
    return [PACKAGE] + [d for d in python_dirs(PACKAGE) if d not in DESCRIBED_AS_A_WHOLE]


@pytest.mark.parametrize("directory", package_dirs(), ids=lambda d: d.relative_to(ROOT).as_posix())
def test_every_package_module_and_subpackage_is_listed(directory: Path) -> None:
    listed = names_listed_in(directory)
    present = {p.name for p in directory.glob("*.py") if p.name != "__init__.py"}
    present |= {d.name for d in python_dirs(directory)}
    unlisted = sorted(n for n in present if n not in listed and n.removesuffix(".py") not in listed)
    assert not unlisted, f"README layout does not list {unlisted} of {directory.relative_to(ROOT)}/"


def test_every_config_group_is_listed() -> None:
    conf = ROOT / "conf"
    covered = {p if e.raw_dir else p.parent for e in ENTRIES for p in e.paths}
    for entry in ENTRIES:
        anchors = []
        node: Entry | None = entry
        while node is not None:
            anchors += [p if node.raw_dir else p.parent for p in node.paths]
            node = node.parent
        for token in mentioned(entry.description, "/"):
            covered |= {(a / token) for a in anchors if (a / token).is_dir()}
    groups = [d for d in sorted(conf.rglob("*")) if d.is_dir() and any(d.glob("*.yaml"))]
    unlisted = [d.relative_to(ROOT).as_posix() for d in groups if d not in covered]
    assert not unlisted, f"README layout does not list the config groups {unlisted}"


@pytest.mark.parametrize(("directory", "pattern"), [("scripts", "*.py"), ("notebooks", "*.ipynb")])
def test_every_script_and_notebook_is_listed(directory: str, pattern: str) -> None:
    (entry,) = [e for e in ENTRIES if e.paths == [ROOT / directory]]
    suffix = pattern[1:]
    named = set(re.findall(rf"[\w]+\{suffix}", entry.description))
    files = {p.name for p in (ROOT / directory).glob(pattern)}
    assert files <= named, f"README layout's {directory}/ does not name {sorted(files - named)}"


def test_every_script_has_its_command() -> None:
    """scripts/<name>.py is python -m dynaseg.cli.<name> ."""
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    commands = {p.stem for p in (PACKAGE / "cli").glob("*.py")} - {"__init__"}
    assert scripts == commands
    for name in scripts:
        text = (ROOT / "scripts" / f"{name}.py").read_text()
        assert f"from dynaseg.cli.{name} import run" in text and len(text.splitlines()) <= 80
