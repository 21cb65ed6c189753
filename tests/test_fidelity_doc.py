"""docs/fidelity.md states what the presets hold (issue 31): its settings table is read and every
row compared with the composed config, and every preset or table the page names exists."""

from __future__ import annotations

import re

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf

from dynaseg.reporting.paper_tables import paper_specs
from helpers import CONF_DIR, ROOT, compose_config, experiment_overrides, sweep_jobs

DOC = ROOT / "docs" / "fidelity.md"
ROW = re.compile(r"^\| `([\w.]+)` \| `([\w.]+)` \| `(.*)` \|$")


def settings() -> list[tuple[str, str, str]]:
    """The (preset, key, value) rows of the "Settings the presets hold" table."""
    section = DOC.read_text().split("## Settings the presets hold", 1)[1]
    return [m.groups() for line in section.splitlines() if (m := ROW.match(line.strip()))]


def composed(preset: str) -> DictConfig:
    """The preset as a run composes it; a table sweep's first job."""
    overrides = experiment_overrides(preset)
    if "table" in preset:
        overrides += sweep_jobs(overrides)[0]
    return compose_config("train", overrides)


def test_the_settings_table_is_read() -> None:
    rows = settings()
    assert len(rows) >= 100
    presets = {p for p, _, _ in rows}
    assert {"sac_r101_cityscapes", "dsnet_r101_voc_aug", "cacnet_r50_pascal_context"} <= presets
    assert {"dmnet_r50_voc_aug", "cacnet_table3_num_heads"} <= presets


@pytest.mark.parametrize("preset", sorted({p for p, _, _ in settings()}))
def test_each_stated_setting_is_what_the_preset_composes(preset: str) -> None:
    cfg = composed(preset)
    wrong = {}
    for name, key, text in settings():
        if name != preset:
            continue
        node = OmegaConf.select(cfg, key, default="<absent>")
        actual = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        if actual != yaml.safe_load(text):
            wrong[key] = (actual, text)
    assert not wrong, f"docs/fidelity.md vs {preset}: {{key: (composed, stated)}} {wrong}"


def test_every_preset_and_table_the_page_names_exists() -> None:
    text = DOC.read_text()
    experiments = {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")}
    named = set(re.findall(r"experiment=(\w+)", text))
    presets = re.findall(r"`((?:sac|dsnet|cacnet|dmnet|mmseg)_\w+)`", text)  # not sac_classifier
    named |= {n for n in presets if re.search(r"_r(50|101)|_table\d|^mmseg_dmnet_", n)}
    assert named and named <= experiments, sorted(named - experiments)
    tables = set(re.findall(r"`((?:sac|dsnet|cacnet|dmnet)-table\d+)`", text))
    assert tables <= set(paper_specs()), sorted(tables - set(paper_specs()))
