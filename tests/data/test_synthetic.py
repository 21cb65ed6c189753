"""The built-in multi-scale scenes and the mmseg-style pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynaseg.data.datamodule import SegDataModule
from dynaseg.data.datasets.synthetic import BALLOON, BIRD, TREE, SyntheticScenes
from dynaseg.data.transforms import (
    CatMaxRatioRandomCrop,
    build_eval_transform,
    build_train_transform,
    rescale_size,
)


def test_samples_are_deterministic_and_order_independent() -> None:
    a = SyntheticScenes("train", length=20, seed=3)
    b = SyntheticScenes("train", length=20, seed=3)
    img_a, lab_a = a.load(7)
    for i in (3, 19, 0):  # other samples first: no hidden global RNG state
        b.load(i)
    img_b, lab_b = b.load(7)
    assert np.array_equal(img_a, img_b) and np.array_equal(lab_a, lab_b)
    img_c, _ = SyntheticScenes("train", length=20, seed=4).load(7)
    assert not np.array_equal(img_a, img_c)
    img_v, _ = SyntheticScenes("val", eval_length=20, seed=3).load(7)
    assert not np.array_equal(img_a, img_v)  # splits are disjoint streams


def test_scenes_mix_stuff_and_things_over_a_wide_range_of_sizes() -> None:
    ds = SyntheticScenes("val", eval_length=60)
    seen = np.zeros(10, bool)
    small, large = [], []
    import cv2

    for i in range(len(ds)):
        img, lab = ds.load(i)
        assert img.shape == (160, 160, 3) and img.dtype == np.uint8 and lab.shape == (160, 160)
        seen[np.unique(lab)] = True
        for cls in (TREE, BIRD, BALLOON):
            n, _, stats, _ = cv2.connectedComponentsWithStats((lab == cls).astype(np.uint8))
            extents = stats[1:, cv2.CC_STAT_HEIGHT]
            small += list(extents[extents > 0])
            large += list(extents)
    assert seen.all(), f"classes never generated: {np.nonzero(~seen)[0]}"
    assert min(small) <= 6 and max(large) >= 20 * min(small)


def test_appearance_alone_is_ambiguous() -> None:
    # Per-pixel colour of sky vs water overlaps heavily: a nearest-mean classifier is poor.
    ds = SyntheticScenes("val", eval_length=30)
    sky, water = [], []
    for i in range(len(ds)):
        img, lab = ds.load(i)
        sky.append(img[lab == 0].astype(float))
        water.append(img[lab == 2].astype(float))
    sky, water = np.concatenate(sky), np.concatenate(water)
    ms, mw = sky.mean(0), water.mean(0)
    correct = (np.linalg.norm(sky - ms, axis=1) < np.linalg.norm(sky - mw, axis=1)).mean()
    correct_w = (np.linalg.norm(water - mw, axis=1) < np.linalg.norm(water - ms, axis=1)).mean()
    assert (correct + correct_w) / 2 < 0.85


def test_train_pipeline_crops_pads_and_normalises() -> None:
    tf = build_train_transform(crop_size=(64, 96), scale=(80, 80), ratio_range=(0.5, 0.5))
    img, lab = SyntheticScenes("train", length=2, size=(80, 80)).load(0)
    out = tf(image=img, mask=lab)
    assert out["image"].shape == (3, 64, 96) and out["image"].dtype == torch.float32
    mask = torch.as_tensor(out["mask"])
    # rescaled to 40×40, so everything beyond is padding with the ignore label
    assert (mask[40:, :] == 255).all() and (mask[:, 40:] == 255).all()
    assert (mask[:40, :40] != 255).all()
    assert abs(float(out["image"][:, :40, :40].mean())) < 3  # normalised
    assert (out["image"][:, 40:, :] == 0).all()


def test_cat_max_ratio_crop_avoids_single_class_crops() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[:, 80:] = 1  # only crops touching the right fifth contain two classes
    img = np.zeros((100, 100, 3), np.uint8)
    crop = CatMaxRatioRandomCrop((30, 30), cat_max_ratio=0.75, max_tries=10)
    crop.set_random_seed(0)
    hits = 0
    for _ in range(50):
        out = crop(image=img, mask=mask)["mask"]
        _, counts = np.unique(out, return_counts=True)
        hits += len(counts) > 1 and counts.max() / counts.sum() < 0.75
    assert hits >= 20  # plain random crops would satisfy the cap only ~10% of the time


def test_eval_transform_keeps_label_resolution() -> None:
    assert rescale_size(512, 683, (2048, 512)) == (512, 683)
    assert rescale_size(1024, 2048, (2048, 512)) == (512, 1024)
    tf = build_eval_transform((2048, 512))
    img = np.zeros((1024, 2048, 3), np.uint8)
    lab = np.ones((1024, 2048), np.uint8)
    out = tf(image=img, mask=lab)
    assert out["image"].shape == (3, 512, 1024)
    assert tuple(np.asarray(out["mask"]).shape) == (1024, 2048)


def test_datamodule_batches_and_takes_classes_from_the_dataset() -> None:
    from functools import partial

    dm = SegDataModule(
        partial(SyntheticScenes, length=4, eval_length=2, size=(80, 80)),
        crop_size=(64, 64),
        scale=(80, 80),
        test_scale=None,
        batch_size=2,
        val_batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["label"].dtype == torch.int64
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (2, 3, 80, 80) and val["label"].shape == (2, 80, 80)
    assert dm.num_classes == 10 and dm.class_names == list(SyntheticScenes.CLASSES)
    assert dm.palette == [list(c) for c in SyntheticScenes.PALETTE]
    with pytest.raises(ValueError, match="dataset class with CLASSES"):
        SegDataModule(partial(dict), num_workers=0)


def test_loader_workers_are_capped_at_the_available_cpus() -> None:
    from functools import partial

    from dynaseg.data.datamodule import available_cpus

    dm = SegDataModule(partial(SyntheticScenes, length=2), num_workers=512)
    assert dm.num_workers == available_cpus() < 512


def _train_crops(num_workers: int, seed: int) -> list[float]:
    from helpers import synthetic_datamodule

    dm = synthetic_datamodule(num_workers, seed, size=80, crop=64, batch_size=1)
    loader = dm.train_dataloader()
    loader.shuffle = False
    # one number per sample that depends on the random rescale/crop/flip/jitter
    return [float(b["image"].sum()) for b in loader]


def test_seed_repeats_the_augmentations() -> None:
    crops = _train_crops(num_workers=2, seed=3)
    assert len(crops) == 8
    assert _train_crops(num_workers=2, seed=3) == crops  # same seed, same augmentations
    assert _train_crops(num_workers=0, seed=3) == _train_crops(num_workers=0, seed=3)
    assert _train_crops(num_workers=0, seed=3) != _train_crops(num_workers=0, seed=4)


def test_same_image_gets_different_augmentations_in_different_workers() -> None:
    from functools import partial

    import lightning as L
    from torch.utils.data import DataLoader

    L.seed_everything(0, workers=True)
    dm = SegDataModule(
        partial(SyntheticScenes, length=1, eval_length=1, size=(80, 80)),
        crop_size=(48, 48),
        scale=(80, 80),
        test_scale=None,
        num_workers=2,
    )
    dm.setup("fit")
    ds = dm.datasets["train"]
    # four copies of sample 0, two per worker: with a shared stream, worker 0's k-th draw would
    # equal worker 1's k-th draw
    from dynaseg.data.datamodule import seed_worker

    loader = DataLoader(
        torch.utils.data.Subset(ds, [0, 0, 0, 0]),
        batch_size=1,
        num_workers=2,
        worker_init_fn=seed_worker,
    )
    sums = [float(b["image"].sum()) for b in loader]
    assert sums[0] != sums[1] and sums[2] != sums[3]


def test_photometric_distortion_follows_mmseg_definitions() -> None:
    from dynaseg.data.transforms import PhotoMetricDistortion

    img = np.full((4, 4, 3), 100, np.uint8)
    img[0, 0] = (250, 10, 10)
    t = PhotoMetricDistortion()
    none = dict(brightness=None, contrast_first=True, contrast=None, saturation=None, hue=None)
    assert np.array_equal(t.apply(img, **none), img)
    bright = t.apply(img, **{**none, "brightness": 20.0})
    assert bright[1, 1].tolist() == [120, 120, 120] and bright[0, 0, 0] == 255  # clipped
    contrast = t.apply(img, **{**none, "contrast": 1.5})
    assert contrast[1, 1].tolist() == [150, 150, 150]
    grey = t.apply(img, **{**none, "saturation": 0.0})
    assert len(set(grey[0, 0].tolist())) == 1  # no saturation left
    # sampled parameters stay in mmseg's ranges
    t.set_random_seed(0)
    for _ in range(50):
        p = t.get_params()
        assert p["brightness"] is None or -32 <= p["brightness"] <= 32
        assert p["contrast"] is None or 0.5 <= p["contrast"] <= 1.5
        assert p["hue"] is None or -18 <= p["hue"] <= 18


def test_random_rescale_draws_ratios_in_range() -> None:
    from dynaseg.data.transforms import RandomRescale

    t = RandomRescale(scale=(100, 100), ratio_range=(0.5, 2.0))
    t.set_random_seed(0)
    img = np.zeros((100, 50, 3), np.uint8)
    heights = {t(image=img, mask=img[..., 0])["image"].shape[0] for _ in range(40)}
    assert min(heights) >= 50 and max(heights) <= 200 and len(heights) > 10


@pytest.mark.parametrize("world_size", [2, 3, 4, 8])
def test_distributed_evaluation_sees_every_sample_exactly_once(world_size: int) -> None:
    from dynaseg.data.datamodule import UnpaddedDistributedSampler

    data = list(range(1449))  # VOC val does not divide by 2, 4 or 8
    seen = [i for r in range(world_size) for i in UnpaddedDistributedSampler(data, world_size, r)]
    assert sorted(seen) == data
    lengths = [len(UnpaddedDistributedSampler(data, world_size, r)) for r in range(world_size)]
    assert max(lengths) - min(lengths) <= 1 and sum(lengths) == 1449


def test_datamodule_uses_the_unpadded_sampler_under_ddp() -> None:
    from functools import partial
    from types import SimpleNamespace

    from dynaseg.data.datamodule import UnpaddedDistributedSampler

    dm = SegDataModule(
        partial(SyntheticScenes, length=4, eval_length=5, size=(32, 32)),
        crop_size=(32, 32),
        scale=(32, 32),
        test_scale=None,
        num_workers=0,
    )
    dm.setup("fit")
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    sampler = dm.val_dataloader().sampler
    assert isinstance(sampler, UnpaddedDistributedSampler) and list(sampler) == [1, 3]
    assert not isinstance(dm.train_dataloader().sampler, UnpaddedDistributedSampler)
