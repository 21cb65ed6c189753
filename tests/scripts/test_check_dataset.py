"""scripts/check_dataset.py reports every kind of fault on a deliberately broken fixture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_real import (
    load_script,
    write_ade20k,
    write_cityscapes,
)

REPO = Path(__file__).resolve().parents[2]


def test_clean_dataset_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cityscapes(tmp_path)
    code = load_script("check_dataset").main(["data=cityscapes", f"paths.data_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[train] 3 image/label pairs — OK" in out and "[val] 2 image/label pairs — OK" in out
    assert "road" in out and "pixel frequency" in out


def test_broken_dataset_reports_each_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_ade20k(tmp_path, n_train=6)["root"]
    img, ann = root / "images" / "training", root / "annotations" / "training"
    (ann / "ADE_train_00000001.png").unlink()  # image without label
    (img / "ADE_train_00000002.jpg").write_bytes(b"\xff\xd8 truncated")  # unreadable image
    (ann / "ADE_train_00000003.png").write_bytes(b"\x89PNG broken")  # unreadable label
    bad = np.asarray(Image.open(ann / "ADE_train_00000004.png")).copy()
    bad[0, 0] = 201
    Image.fromarray(bad).save(ann / "ADE_train_00000004.png")  # value outside 0..150
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(ann / "ADE_train_00000005.png")  # size
    code = load_script("check_dataset").main(["data=ade20k", f"paths.data_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[train] 5 image/label pairs (+1 incomplete)" in out
    assert "1 images without a label" in out and "ADE_train_00000001.png" in out
    assert "1 truncated images" in out
    assert "ADE_train_00000002.jpg is truncated (12 bytes, no JPEG end marker)" in out
    assert "1 unreadable files" in out and "ADE_train_00000003.png is unreadable" in out
    assert "1 labels with values outside" in out and "raw value(s) 201" in out
    assert "1 image/label size mismatches" in out and "ADE_train_00000005.png is 12×10" in out
    assert "[val] 2 image/label pairs — OK" in out
    assert "FAILED: 5 error(s)" in out


def test_missing_root_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/check_dataset.py", "data=voc_aug", f"paths.data_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "VOCdevkit/VOC2012" in proc.stdout and "prep_voc_aug.py" in proc.stdout
