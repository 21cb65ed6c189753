"""Parameters and FLOPs of a composed model config, whole model and head only.

Usage::

    python scripts/complexity.py model=dmnet data=ade20k            # any Hydra overrides
    python scripts/complexity.py model=dsnet --size 512 512
    python scripts/complexity.py --paper-table docs/complexity.md   # DMNet Table 3 / CaC Table 7

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: one multiply-add = **2 FLOPs**
(the papers' "FLOPs" are multiply-adds, so divide ours by 2 to compare). Convolutions, matmuls and
``torchvision.ops.deform_conv2d`` (``dynaseg.complexity``: ``2·out·C_in/groups·k²``) are counted;
elementwise ops, BN, pooling, interpolation and bilinear sampling are not. "Head" excludes the
backbone and the classifier ``conv_seg`` (DMNet Table 3's "without backbone and classifier").
Also ``python -m dynaseg.cli.complexity``, ``dynaseg-complexity``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dynaseg.cli import exit_with
from dynaseg.complexity import format_table, model_complexity, paper_table_markdown
from dynaseg.config_schema import validate_config
from dynaseg.run.entry import compose


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. model=dmnet data=ade20k"
    )
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument(
        "--paper-table",
        type=Path,
        default=None,
        metavar="MD",
        help="write the DMNet Table 3 / CaC-Net Table 7 comparison to this markdown file",
    )
    args = parser.parse_args(argv)
    size = (args.size[0], args.size[1])
    if args.paper_table is not None:
        cmd = "python scripts/complexity.py --paper-table " + str(args.paper_table)
        text = paper_table_markdown(size, cmd)
        args.paper_table.parent.mkdir(parents=True, exist_ok=True)
        args.paper_table.write_text(text)
        print(text)
        return 0
    cfg = compose("train", args.overrides)
    validate_config(cfg)  # a wrong type or range: one error line naming the key
    title = f"{' '.join(args.overrides) or '(defaults)'} @ {size[0]}x{size[1]}, batch 1"
    print(format_table(model_complexity(cfg, size), title))
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
