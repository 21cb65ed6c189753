"""provenance.hardware records what decides the CPU kernels (dynaseg.environment.hardware_info);
the table builder's flag of runs from several setups is tested in test_tables.py."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dynaseg.environment import cpuinfo, hardware_info, kernel_flags, library_versions
from dynaseg.run.provenance import describe_run
from helpers import compose_config

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx f16c avx2 fma avx512f avx512bw avx512_vnni amx_bf16 amx_tile ht

processor\t: 1
model name\t: some other core
flags\t\t: fpu
"""

TORCH_CONFIG = """PyTorch built with:
  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64
  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)
  - CPU capability usage: AVX512
"""


def test_cpu_model_and_kernel_flags_from_cpuinfo(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpuinfo(path)
    assert info["model name"] == "Intel(R) Xeon(R) Platinum 8480+"  # the first processor's
    assert kernel_flags(info["flags"]) == [
        "amx_bf16",
        "amx_tile",
        "avx",
        "avx2",
        "avx512_vnni",
        "avx512bw",
        "avx512f",
        "f16c",
        "fma",
        "sse4_2",
    ]
    assert cpuinfo(tmp_path / "absent") == {}  # not Linux: nothing, no error


def test_library_versions_from_torchs_build_description() -> None:
    assert library_versions(TORCH_CONFIG) == {"onednn": "3.12.0", "mkl": "2024.2"}
    assert library_versions("PyTorch built with:\n  - GCC 13.3\n") == {"onednn": None, "mkl": None}


def test_metrics_provenance_holds_the_hardware(tmp_path: Path) -> None:
    """What describe_run puts into metrics.json, checked against this machine."""
    hw = describe_run(compose_config("train", ["experiment=quickstart"]))["hardware"]
    assert hw == hardware_info()  # one description: the loggers record the same dict
    assert hw["torch"] == torch.__version__ and hw["torch_threads"] == torch.get_num_threads()
    assert hw["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert hw["onednn"] == library_versions()["onednn"]
    assert hw["cpus"] >= 1 and hw["cpu_model"]
    flags = set(cpuinfo().get("flags", "").split())
    assert set(hw["isa_flags"]) <= flags
    json.dumps(hw)  # plain JSON
