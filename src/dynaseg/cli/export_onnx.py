"""Export a trained checkpoint to ONNX and check it against ONNX Runtime on CPU.

Usage::

    python scripts/export_onnx.py path/to/model.ckpt model.onnx            # dynamic B, H, W
    python scripts/export_onnx.py model.ckpt model.onnx --size 512 512 --check-batches 1 2

The graph is whole-image inference: ``images`` (B, 3, H, W), ImageNet-normalised float32 →
``logits`` (B, K, H, W) (argmax over K is the label map). Batch, height and width are dynamic
(``--static`` fixes them to ``--size``). Sliding-window and multi-scale/flip testing are loops
around this graph and are not part of it. After export, ONNX Runtime runs each
``--check-batches`` size on random input of ``--size`` (and one other size, to exercise the
dynamic axes) and the max absolute difference to PyTorch is printed; the exit code is 1 if it
exceeds ``--tolerance``.

How the dynamic-filter heads are made exportable: :mod:`dynaseg.models.export`.
Also ``python -m dynaseg.cli.export_onnx``, ``dynaseg-export-onnx``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from dynaseg.cli import exit_with


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="Lightning .ckpt (src/train.py or converter)")
    parser.add_argument("output", type=Path, help=".onnx file to write")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--static", action="store_true", help="fix batch 1 and --size in the graph")
    parser.add_argument("--check-batches", type=int, nargs="*", default=[1, 2], metavar="B")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    from dynaseg.models.export import export_onnx, onnx_max_abs_diff
    from dynaseg.run.checkpoints import load_module

    module = load_module(args.checkpoint, "checkpoint")
    net = module.net.eval()
    align = module.inference.align_corners
    h, w = args.size
    batch = 1 if args.static else max(2, *args.check_batches)
    print(f"exporting {args.checkpoint.name} (trace {batch}x3x{h}x{w}) ...", flush=True)
    export_onnx(net, args.output, torch.randn(batch, 3, h, w), align, dynamic=not args.static)
    print(f"wrote {args.output}")
    shapes = [(b, h, w) for b in args.check_batches]
    if not args.static:  # a second image size exercises the dynamic height/width
        shapes.append((args.check_batches[0], h + 8 * 3, w - 8 * 2))
    worst = 0.0
    for b, hh, ww in shapes if not args.static else [(1, h, w)]:
        diff = onnx_max_abs_diff(args.output, net, torch.randn(b, 3, hh, ww), align)
        worst = max(worst, diff)
        print(f"ONNX Runtime vs PyTorch, batch {b}, {hh}x{ww}: max abs diff {diff:.3g}")
    if worst > args.tolerance:
        print(
            f"error: max abs diff {worst:.3g} exceeds --tolerance {args.tolerance}", file=sys.stderr
        )
        return 1
    return 0


def run() -> NoReturn:
    exit_with(main)


if __name__ == "__main__":
    run()
