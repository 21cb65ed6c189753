"""heads.base.capture_internals: what each dynamic head records, and that recording is inert."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dynaseg.models.heads.base import capture_internals, record_internal
from dynaseg.models.heads.cacnet import CaCHead
from dynaseg.models.heads.dmnet import DMHead
from dynaseg.models.heads.dsnet import DSHead
from dynaseg.models.heads.fcn import FCNHead
from dynaseg.models.heads.sac import SACHead

CHANNELS = [8, 8, 16, 16, 32]


def features(batch: int = 2, size: int = 12) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, c, size, size) for c in CHANNELS]


def test_dmnet_records_the_generated_filters_and_output_is_unchanged() -> None:
    torch.manual_seed(0)
    head = DMHead(CHANNELS, num_classes=5, channels=6, filter_sizes=(1, 3, 5)).eval()
    feats = features()
    plain = head(feats)
    with capture_internals(head) as internals:
        recorded = head(feats)
    assert torch.equal(plain, recorded)  # recording never changes the numerics
    got = internals[""]
    assert sorted(got) == [f"dcm_modules.{i}.filters" for i in range(3)]
    for i, k in enumerate((1, 3, 5)):
        dcm = head.dcm_modules[i]
        # Eq. (1): g_k(x) = 1×1 conv of the k×k adaptive average pool of the context
        expected = dcm.filter_gen_conv(F.adaptive_avg_pool2d(feats[4], k))
        assert got[f"dcm_modules.{i}.filters"].shape == (2, 6, k, k)
        torch.testing.assert_close(got[f"dcm_modules.{i}.filters"], expected)
        assert not got[f"dcm_modules.{i}.filters"].requires_grad
    # the two images of the batch get different filters (context-aware)
    f3 = got["dcm_modules.1.filters"]
    assert (f3[0] - f3[1]).abs().max() > 1e-4


def test_recording_is_off_outside_the_context_and_keyed_by_head_path() -> None:
    from dynaseg.models.segmentor import Segmentor

    class Backbone(torch.nn.Module):
        channels = CHANNELS

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [
                F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 6).expand(-1, c, -1, -1)
                for c in CHANNELS
            ]

    net = Segmentor(
        Backbone(),
        lambda in_channels, num_classes: DMHead(
            in_channels, num_classes, channels=4, filter_sizes=(3,)
        ),
        num_classes=3,
        auxiliary_head=lambda in_channels, num_classes: FCNHead(
            in_channels, num_classes, in_index=3, channels=4
        ),
    ).eval()
    images = torch.randn(1, 3, 24, 24)
    with capture_internals(net) as internals:
        net(images)
    assert set(internals) == {"decode_head", "auxiliary_head.0"}
    assert list(internals["decode_head"]) == ["dcm_modules.0.filters"]
    assert internals["auxiliary_head.0"] == {}  # FCN has no adaptive internals
    # after the block nothing is recorded and no state is left on the modules
    before = dict(internals["decode_head"])
    net(torch.randn(1, 3, 24, 24))
    assert internals["decode_head"].keys() == before.keys()
    assert torch.equal(
        internals["decode_head"]["dcm_modules.0.filters"], before["dcm_modules.0.filters"]
    )
    assert all("_internals_store" not in m.__dict__ for m in net.modules())
    record_internal(net.decode_head, "x", torch.ones(1))  # a no-op outside the block


def test_cac_sac_dsnet_record_their_maps() -> None:
    feats = features(batch=1)
    torch.manual_seed(0)
    cac = CaCHead(CHANNELS, 4, channels=8, num_heads=2, kernel_sizes=[3, 5]).eval()
    with capture_internals(cac) as internals:
        out = cac(feats)
    assert torch.equal(out, cac(feats))
    got = internals[""]
    assert got["cac_modules.1.kernel"].shape == (1, 8, 5, 5)
    w = got["cac_modules.0.weights"]
    assert w.shape == (1, 8, 12, 12)
    # Eq. (2): W is a sum of one sigmoid per dilation, so 0 < W < |dilations|
    assert w.min() > 0 and w.max() < 3

    sac = SACHead(CHANNELS, 4, channels=8).eval()
    with capture_internals(sac) as internals:
        sac(feats)
    scale = internals[""]["scale"]
    assert scale.shape == (1, 1, 12, 12)
    torch.testing.assert_close(scale, sac.scale_regression(feats[4]))

    ds = DSHead(CHANNELS, 4, channels=8, low_channels=8, aspp_dilations=(1, 2)).eval()
    torch.nn.init.normal_(ds.offset_conv.weight, std=0.1)
    with capture_internals(ds) as internals:
        ds(feats)
    offsets = internals[""]["offsets"]
    assert offsets.shape == (1, 2 * 9, 12, 12) and offsets.abs().max() > 0
