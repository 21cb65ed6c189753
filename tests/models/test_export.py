"""Export formulations equal the training-time ops; ONNX Runtime parity (slow: export is ~1 min)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dynaseg.models.ops import (
    AdaptiveAvgPool2d,
    adaptive_avg_pool2d,
    dynamic_depthwise_conv2d,
    matmul_adaptive_avg_pool2d,
    shift_add_depthwise_conv2d,
)
from dynaseg.run.checkpoints import save_module
from dynaseg.run.recipes import build_model
from helpers import TINY, compose_config


@pytest.mark.parametrize(("k", "dilation"), [(1, 1), (3, 1), (4, 1), (7, 2)])
def test_shift_add_equals_the_grouped_dynamic_conv(k: int, dilation: int) -> None:
    torch.manual_seed(k)
    x, filters = torch.randn(3, 5, 11, 9), torch.randn(3, 5, k, k)
    ref = dynamic_depthwise_conv2d(x, filters, dilation)
    torch.testing.assert_close(shift_add_depthwise_conv2d(x, filters, dilation), ref)


@pytest.mark.parametrize("bins", [1, 2, 3, 6, 7, (2, 5)])
def test_matmul_pool_equals_adaptive_avg_pool(bins, monkeypatch) -> None:
    x = torch.randn(2, 4, 13, 10)
    ref = F.adaptive_avg_pool2d(x, bins)
    torch.testing.assert_close(matmul_adaptive_avg_pool2d(x, bins), ref)
    assert torch.equal(adaptive_avg_pool2d(x, bins), ref)  # eager: PyTorch's own pooling
    assert torch.equal(AdaptiveAvgPool2d(bins)(x), ref)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)  # as while exporting
    torch.testing.assert_close(adaptive_avg_pool2d(x, bins), ref)
    torch.testing.assert_close(AdaptiveAvgPool2d(bins)(x), ref)


def tiny_net(model: str):
    cfg = compose_config("train", TINY + [f"model={model}"])
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dmnet", "cacnet"])
def test_onnx_runtime_parity_with_two_batch_sizes(model: str, tmp_path: Path, capsys) -> None:
    """One exported file, dynamic batch and size: batches 1 and 3 plus another image size."""
    from dynaseg.cli import export_onnx as script

    save_module(tiny_net(model), tmp_path / "m.ckpt")
    onnx_path = tmp_path / "m.onnx"
    args = [
        str(tmp_path / "m.ckpt"),
        str(onnx_path),
        "--size",
        "64",
        "80",
        "--check-batches",
        "1",
        "3",
        "--tolerance",
        "1e-4",
    ]
    assert script.main(args) == 0
    out = capsys.readouterr().out
    assert "batch 1, 64x80: max abs diff" in out and "batch 3, 64x80" in out
    assert "batch 1, 88x64" in out
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[2].dim_param and dims[3].dim_param  # dynamic B, H, W


@pytest.mark.slow
def test_onnx_export_of_a_vit_backbone_at_a_fixed_size(tmp_path: Path) -> None:
    """DMNet on a plain ViT (feature pyramid, interpolated position embeddings) exports and runs
    in ONNX Runtime at the traced size. Dynamic axes do not hold for it: the exported graph keeps
    the sample's batch in its token LayerNorm (ONNX Runtime rejects batch 3), so it is exported
    fixed-size."""
    from dynaseg.models.export import export_onnx, onnx_max_abs_diff

    cfg = compose_config(
        "train",
        [*TINY, "model=dmnet", "model/backbone=vit_cpu", "model.net.backbone.embed_dim=16"],
    )
    torch.manual_seed(0)
    net = build_model(cfg).net.eval()
    images = torch.randn(1, 3, 64, 80)
    path = export_onnx(net, tmp_path / "vit.onnx", images, dynamic=False)
    assert onnx_max_abs_diff(path, net, images) < 1e-4
