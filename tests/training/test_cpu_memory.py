"""Freed CPU memory kept for reuse (``extras.cpu_memory_reuse``, dynaseg.run.cpu_memory): a block
over glibc's largest mmap threshold is faulted in anew on every allocation by default and not
with reuse; every entry point applies the setting; where glibc is missing the run says so."""

from __future__ import annotations

import logging
import resource

import pytest
import torch
from PIL import Image

from dynaseg.run import cpu_memory, prediction
from dynaseg.run.recipes import start_run
from helpers import compose_config

BLOCK_MB = 96  # over glibc's largest mmap threshold (32 MiB on 64-bit)
PAGES = BLOCK_MB * 2**20 // resource.getpagesize()

needs_glibc = pytest.mark.skipif(cpu_memory.glibc() is None, reason="mallopt is glibc's")


def faults_of_one_block() -> int:
    """Minor page faults of allocating, filling and freeing one ``BLOCK_MB`` tensor."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(BLOCK_MB * 2**20 // 4)
    block.fill_(1.0)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@needs_glibc
def test_reuse_keeps_a_freed_block_so_the_next_one_is_not_faulted_in_again() -> None:
    try:
        assert cpu_memory.restore_glibc_defaults()
        faults_of_one_block()
        fresh = [faults_of_one_block() for _ in range(4)]  # mmap'd, unmapped: every page new
        assert cpu_memory.keep_freed_memory()
        for _ in range(3):  # the heap grows to hold the block (twice when an aligned block does
            faults_of_one_block()  # not fit the hole a freed one left)
        reused = [faults_of_one_block() for _ in range(4)]
    finally:
        cpu_memory.restore_glibc_defaults()
    assert min(fresh) >= 0.9 * PAGES
    assert sum(reused) <= 1.5 * PAGES, reused  # (0 each on this machine; other allocations
    # between the blocks may leave a hole too small once)


@pytest.mark.parametrize(("setting", "applied"), [(True, [True]), (False, [])])
def test_every_run_start_applies_its_setting(
    setting: bool, applied: list, monkeypatch, tmp_path
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda: calls.append(True) or True)
    overrides = ["experiment=quickstart", f"extras.cpu_memory_reuse={setting}"]
    start_run(compose_config("train", overrides, output_dir=tmp_path))  # train and eval
    assert calls == applied

    class Loading(Exception):  # noqa: N818 — stops predict where it would load the weights
        pass

    def load_module(path: object) -> None:
        raise Loading

    monkeypatch.setattr(prediction, "load_module", load_module)
    (tmp_path / "x.ckpt").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    overrides = [f"ckpt_path={tmp_path / 'x.ckpt'}", f"inputs={tmp_path / 'a.png'}"]
    overrides += [f"output_dir={tmp_path / 'pred'}", f"extras.cpu_memory_reuse={setting}"]
    with pytest.raises(Loading):
        prediction.predict(compose_config("predict", overrides))
    assert calls == applied * 2
    assert compose_config("train", [])["extras"]["cpu_memory_reuse"] is True  # the default
    for task, base in (("eval", ["ckpt_path=x.ckpt"]), ("predict", ["ckpt_path=x.ckpt"])):
        assert compose_config(task, base)["extras"]["cpu_memory_reuse"] is True


def test_without_glibc_the_run_says_so_and_goes_on(monkeypatch, caplog) -> None:
    monkeypatch.setattr(cpu_memory, "glibc", lambda: None)
    assert cpu_memory.keep_freed_memory() is False
    assert cpu_memory.restore_glibc_defaults() is False
    with caplog.at_level(logging.INFO):
        assert cpu_memory.apply_cpu_memory_policy({"extras": {"cpu_memory_reuse": True}}) is False
    assert "extras.cpu_memory_reuse: the C library is not glibc" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert cpu_memory.apply_cpu_memory_policy({"extras": {"cpu_memory_reuse": False}}) is False
    assert caplog.text == ""
