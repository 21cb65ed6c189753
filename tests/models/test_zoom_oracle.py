"""The positive control for scale: the zoom oracle, its zoom-blind twin, and the zoom's plumbing
(dataset sample → batch → SegmentationModule → Segmentor → the one head that reads it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynaseg.data.datasets.synthetic_scales import SyntheticScaleScenes
from dynaseg.errors import ConfigError
from dynaseg.metrics import metrics_from_confmat
from dynaseg.models.heads import FCNHead, ZoomFiLMHead
from dynaseg.models.heads.base import capture_internals
from dynaseg.models.segmentor import Segmentor
from dynaseg.run.recipes import train
from helpers import NO_FIGURES, TINY, compose_config

CH = [4, 8, 8, 12, 16]


def feats(batch: int = 3, size: int = 6) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, c, size, size) for c in CH]


def pair(**kwargs) -> tuple[ZoomFiLMHead, ZoomFiLMHead]:  # noqa: ANN003
    """Oracle and twin from the same seed, with non-zero FiLM output layers (as after
    training), in eval mode (no dropout)."""
    heads = []
    for adaptive in (True, False):
        torch.manual_seed(3)
        head = ZoomFiLMHead(CH, 5, channels=6, adaptive=adaptive, **kwargs)
        torch.manual_seed(4)
        for mlp in (head.film, getattr(head, "film_extra", None)):
            if mlp is not None:
                torch.nn.init.normal_(mlp[-1].weight, std=0.5)
                torch.nn.init.normal_(mlp[-1].bias, std=0.5)
        heads.append(head.eval())
    return heads[0], heads[1]


def test_oracle_is_film_by_the_log_zoom_and_the_twin_ignores_it() -> None:
    oracle, twin = pair()
    x = feats()
    zoom = torch.tensor([0.6, 1.0, 1.6])
    with torch.no_grad():
        out = oracle(x, zoom)
        # reference: h · (1 + γ(log z)) + β(log z) between the two convs
        gamma, beta = oracle.film(zoom.log()[:, None]).chunk(2, dim=1)
        h = oracle.conv_in(x[4]) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        torch.testing.assert_close(out, oracle.conv_seg(oracle.conv_out(h)))
        # the zoom changes the output image by image; the twin reads no zoom at all
        swapped = oracle(x, zoom.flip(0))
        assert not torch.allclose(out[0], swapped[0]) and torch.equal(out[1], swapped[1])
        assert oracle.scene_inputs == ("zoom",) and twin.scene_inputs == ()
        # at zoom 1 (log 0) the oracle is its twin: same layers, same initialisation
        torch.testing.assert_close(oracle(x, torch.ones(3)), twin(x), rtol=0, atol=0)
    with capture_internals(oracle) as internals:
        oracle(x, zoom)
    assert torch.equal(internals[""]["film_gamma"], gamma)


def test_oracle_starts_as_a_plain_two_conv_head_and_trains_its_film() -> None:
    torch.manual_seed(0)
    head = ZoomFiLMHead(CH, 5, channels=6)
    x = feats()
    head.eval()
    with torch.no_grad():  # the FiLM output layer starts at zero: identity modulation
        plain = head.conv_seg(head.conv_out(head.conv_in(x[4])))
        torch.testing.assert_close(head(x, torch.tensor([0.6, 1.0, 1.6])), plain)
    head.train()
    head(x, torch.tensor([0.6, 1.0, 1.6])).square().mean().backward()
    assert head.film[-1].weight.grad.abs().sum() > 0


def test_extra_feature_is_film_modulated_by_its_own_gain_and_added_before_the_second_conv() -> None:
    """R2: ``film_extra_index`` also reads that feature (by role: ``auxiliary`` = layer3)."""
    oracle, twin = pair(film_extra_index=3)
    x = feats()
    x[3] = x[3][..., :3, :3]  # a coarser extra feature is resized to the main one
    zoom = torch.tensor([0.6, 1.0, 1.6])
    with torch.no_grad():
        g, b = oracle.film(zoom.log()[:, None]).chunk(2, dim=1)
        ge, be = oracle.film_extra(zoom.log()[:, None]).chunk(2, dim=1)
        assert not torch.allclose(g, ge)
        h = oracle.conv_in(x[4]) * (1 + g[:, :, None, None]) + b[:, :, None, None]
        e = oracle.conv_extra(x[3]) * (1 + ge[:, :, None, None]) + be[:, :, None, None]
        h = h + torch.nn.functional.interpolate(e, size=(6, 6), mode="bilinear")
        torch.testing.assert_close(oracle(x, zoom), oracle.conv_seg(oracle.conv_out(h)))
        torch.testing.assert_close(oracle(x, torch.ones(3)), twin(x), rtol=0, atol=0)
    assert oracle.conv_extra.conv.in_channels == CH[3]
    with capture_internals(oracle) as internals:
        oracle(x, zoom)
    assert torch.equal(internals[""]["film_extra_gamma"], ge)
    assert torch.equal(internals[""]["film_extra_beta"], be)
    # without it the head is unchanged: same parameters drawn in the same order
    torch.manual_seed(3)
    plain = ZoomFiLMHead(CH, 5, channels=6)
    assert not hasattr(plain, "conv_extra")
    torch.manual_seed(3)
    r2 = ZoomFiLMHead(CH, 5, channels=6, film_extra_index=3)
    torch.testing.assert_close(plain.conv_in.conv.weight, r2.conv_in.conv.weight, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="film_extra_index"):
        ZoomFiLMHead(CH, 5, channels=6, film_extra_index=7)


@pytest.mark.parametrize(
    ("zoom", "match"),
    [(None, "needs each image's zoom"), (torch.tensor([1.0, 1.2]), "one positive zoom per image")],
)
def test_oracle_without_a_zoom_per_image_is_a_clear_error(zoom, match: str) -> None:  # noqa: ANN001
    oracle, _ = pair()
    with pytest.raises(ValueError, match=match):
        oracle(feats(), zoom)


def test_segmentor_hands_the_zoom_to_the_head_that_reads_it_only() -> None:
    backbone = torch.nn.Identity()
    backbone.channels = CH
    net = Segmentor(
        backbone,
        lambda **kw: ZoomFiLMHead(**kw, channels=6),
        num_classes=5,
        auxiliary_head=lambda **kw: FCNHead(**kw, channels=4, in_index=3),
    )
    net.extract_features = lambda images: feats()
    assert net.scene_inputs == ("zoom",)
    zoom = torch.tensor([0.6, 1.0, 1.6])
    logits = net.forward_train(torch.zeros(3, 3, 48, 48), {"zoom": zoom})
    assert [tuple(t.shape) for t in logits] == [(3, 5, 6, 6), (3, 5, 6, 6)]
    with pytest.raises(ConfigError, match=r"ZoomFiLMHead reads \['zoom'\] per image"):
        net.decode_logits(torch.zeros(3, 3, 48, 48))


def test_every_scene_sample_carries_its_zoom() -> None:
    data = SyntheticScaleScenes("val", size=(32, 32), eval_length=3, zoom_range=(0.6, 1.6))
    zooms = [float(data[i]["zoom"]) for i in range(3)]
    np.testing.assert_allclose(zooms, [data.zoom_of(i) for i in range(3)], rtol=1e-6)
    assert len(set(zooms)) == 3 and data[0]["zoom"].dtype == torch.float32


TINY_SCALES = [
    "experiment=scale_control_mini",
    "hydra.mode=RUN",
    "seed=1",
    "data=synthetic_scales",
    "model.init_from=null",  # random backbone weights, trained: no pretrained miniature backbone
    "model.freeze=[]",
    *(o for o in TINY if not o.startswith("experiment=")),
    "debug=fdr",  # one training step, one validation batch
    *NO_FIGURES,
]


def test_oracle_receives_each_scene_zoom_in_training_and_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[tuple[bool, list[float]]] = []
    forward = ZoomFiLMHead.forward

    def recording(self, features, zoom=None):  # noqa: ANN001, ANN202
        received.append((self.training, zoom.tolist()))
        return forward(self, features, zoom)

    monkeypatch.setattr(ZoomFiLMHead, "forward", recording)
    cfg = compose_config("train", TINY_SCALES, output_dir=tmp_path)
    results = train(cfg)
    assert 0.0 <= results["val"]["mIoU"] <= 1.0

    data = {s: SyntheticScaleScenes(s, length=8, eval_length=4) for s in ("train", "val")}
    train_zooms = {round(data["train"].zoom_of(i), 5) for i in range(8)}
    val_zooms = [data["val"].zoom_of(i) for i in range(4)]
    trained = [z for training, batch in received if training for z in batch]
    validated = [z for training, batch in received if not training for z in batch]
    # one training step of batch 2: two of the training scenes' own zooms; in eval mode the MAC
    # count on validation scene 0 (logging callback), then one validation batch: scenes 0 and 1
    assert len(trained) == 2 and {round(z, 5) for z in trained} <= train_zooms
    np.testing.assert_allclose(validated, [val_zooms[0], *val_zooms[:2]], rtol=1e-6)
    assert len(set(trained)) == 2 and validated[1] != validated[2]


@pytest.mark.slow
@pytest.mark.parametrize("head", ["zoom_film", "sac_fcn"])
@pytest.mark.parametrize("adaptive", [True, False])
def test_every_scale_control_arm_trains(head: str, adaptive: bool, tmp_path: Path) -> None:
    overrides = [
        *TINY_SCALES,
        f"model/decode_head={head}",
        f"model.net.decode_head.adaptive={str(adaptive).lower()}",
    ]
    results = train(compose_config("train", overrides, output_dir=tmp_path))
    assert 0.0 <= results["val"]["mIoU"] <= 1.0
    assert results["val"]["per_class"]["balloon"]["IoU"] is not None
    # metrics.json keeps the val confusion matrix (rows: ground truth, classes in per_class's
    # order), from which R3's pair confusion is read: it reproduces every per-class IoU.
    written = json.loads((tmp_path / "metrics.json").read_text())["val"]
    cm = torch.tensor(written["confusion_matrix"], dtype=torch.int64)
    classes = list(written["per_class"])
    assert cm.shape == (len(classes), len(classes)) and cm.sum() > 0
    iou = metrics_from_confmat(cm)["IoU"]
    for i, name in enumerate(classes):
        if not torch.isnan(iou[i]):
            assert written["per_class"][name]["IoU"] == pytest.approx(float(iou[i]), abs=1e-12)


def test_example_predictions_hand_the_oracle_each_scene_zoom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The figures' predictions (visualization.predict_samples, drawn by the logging callback at
    validation) pass the zoom like training does: the first scale-control sweep's oracle runs
    failed there with "this batch does not carry zoom" after training."""
    from dynaseg import visualization as vis
    from dynaseg.run.recipes import build_model

    received: list[float] = []
    forward = ZoomFiLMHead.forward

    def recording(self, features, zoom=None):  # noqa: ANN001, ANN202
        received.extend(zoom.tolist())
        return forward(self, features, zoom)

    monkeypatch.setattr(ZoomFiLMHead, "forward", recording)
    module = build_model(compose_config("train", TINY_SCALES))
    dataset = SyntheticScaleScenes("val", length=8, eval_length=4)
    samples = vis.predict_samples(module, dataset, [0, 2], capture=True)
    assert len(samples) == 2 and samples[0].prediction.shape == samples[0].label.shape
    np.testing.assert_allclose(received, [dataset.zoom_of(0), dataset.zoom_of(2)], rtol=1e-6)
