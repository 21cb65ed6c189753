"""Convert an mmsegmentation DMNet checkpoint into a checkpoint ``src/eval.py``/``src/predict.py`` load.

Usage::

    python scripts/convert_mmseg_checkpoint.py dmnet_r50-d8_512x1024_40k_cityscapes_*.pth \\
        dmnet_r50_cityscapes.ckpt experiment=mmseg_dmnet_r50_d8_cityscapes_512x1024_40k
    python src/eval.py ckpt_path=dmnet_r50_cityscapes.ckpt data=cityscapes paths.data_dir=/datasets

Positional arguments after the two paths are Hydra overrides of ``conf/train.yaml`` that describe
the model the weights belong to (an ``experiment=mmseg_dmnet_*`` preset sets backbone depth,
classes and the evaluation mode, e.g. slide 769/513 with align_corners for Cityscapes 769×769).
The backbone is never downloaded (``pretrained=false``): every weight comes from the file.

Key map and checks: :mod:`dynaseg.models.mmseg_import` (every source key consumed, every target
key filled, shapes equal; otherwise the error names the keys). Also
``python -m dynaseg.cli.convert_mmseg_checkpoint``, ``dynaseg-convert-mmseg``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.config_schema import validate_config
from dynaseg.models.mmseg_import import convert_mmseg_state_dict, load_mmseg_checkpoint
from dynaseg.models.state_dicts import unwrap_state_dict
from dynaseg.run.checkpoints import save_module
from dynaseg.run.entry import compose
from dynaseg.run.recipes import build_model


def convert(source: Path, output: Path, overrides: Sequence[str], trust_pickle: bool = False):
    """Build the model of ``overrides``, fill it from ``source`` and save a Lightning checkpoint."""
    offline = ["model.net.backbone.pretrained=false", "model.net.backbone.checkpoint_path=null"]
    cfg = compose("train", [*overrides, *offline])  # every weight comes from the file
    validate_config(cfg)  # a wrong value is one error line, before the file is read
    mmseg_state = unwrap_state_dict(load_mmseg_checkpoint(source, trust_pickle))
    module = build_model(cfg)
    converted, defaulted = convert_mmseg_state_dict(mmseg_state, module.state_dict())
    module.load_state_dict(converted, strict=True)
    save_module(module, output)
    print(
        f"converted {len(mmseg_state)} mmseg tensors into {len(converted)} model tensors"
        + (f" ({len(defaulted)} BatchNorm counters set to 0)" if defaulted else "")
        + f"; inference {module.inference.describe()}\nwrote {output}"
    )
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="mmseg .pth (state_dict with backbone./...)")
    parser.add_argument("output", type=Path, help="Lightning .ckpt to write")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. experiment=mmseg_dmnet_r50_d8_..."
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow any pickled object in the source (can run code from it: files you trust only)",
    )
    args = parser.parse_args(argv)
    convert(args.source, args.output, args.overrides, args.trust_pickle)
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
