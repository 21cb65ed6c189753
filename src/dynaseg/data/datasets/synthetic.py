"""A procedurally generated multi-scale scene dataset that ships as code.

It is built to contain exactly the problem DMNet addresses — objects and stuff whose scale varies
widely and whose local appearance is ambiguous, so that only context and scale tell them apart:

- **stuff**: ``sky`` above a random horizon; ``grass``, ``water`` and ``road`` regions below it
  (a random Voronoi partition); ``building`` blocks standing on the horizon.
- **things** whose *appearance is shared* between classes:
  ``car`` and ``boat`` are the same rounded boxes, painted with the same random colours — a box on
  road is a car, on water a boat (context decides); ``bird`` and ``balloon`` are the same ellipses
  in the sky — small ones are birds (2–5 px radius), large ones balloons (10–45 px): scale decides;
  ``tree`` crowns on grass range from 3 px to 40 px radius.
  Object sizes thus span from ~4 px to most of the image (> 20×).
- **ambiguous texture**: sky vs water, road vs building and grass vs tree have close mean colours;
  every image gets a random illumination gain and colour cast, a smooth shading field and strong
  per-pixel noise, so no single pixel's colour identifies its class.

Every sample is a pure function of ``(seed, split, index)``: generating it twice gives the same
bytes, in any worker, in any order. Generating one 160×160 sample takes about 4 ms of CPU; a
dataset keeps each scene once made (:mod:`dynaseg.data.scene_cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dynaseg.data.base import SegmentationDataset
from dynaseg.data.scene_cache import SceneCache, generator_modules, source_digest

SKY, GRASS, WATER, ROAD, BUILDING, CAR, BOAT, TREE, BIRD, BALLOON = range(10)

# Mean colours of the stuff classes: pairs are deliberately close (sky/water, road/building,
# grass/tree); things take a random colour from THING_COLOURS, shared by car/boat/bird/balloon.
STUFF_COLOURS = {
    SKY: (140, 175, 215),
    WATER: (105, 145, 195),
    GRASS: (95, 140, 75),
    TREE: (70, 120, 65),
    ROAD: (118, 118, 122),
    BUILDING: (132, 126, 122),
}
THING_COLOURS = np.array(
    [(200, 50, 45), (230, 200, 60), (235, 235, 235), (40, 40, 45), (60, 90, 200), (230, 130, 40)],
    dtype=np.float32,
)
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}


class SyntheticScenes(SegmentationDataset):
    """Deterministic multi-scale synthetic scenes (see module docstring).

    Args:
        split: ``train``, ``val`` or ``test`` — disjoint random streams.
        transform: albumentations pipeline applied in ``__getitem__``.
        size: generated image size ``(h, w)``.
        length: number of training samples (an "epoch").
        eval_length: number of samples in the ``val``/``test`` splits (fixed images).
        seed: base seed; a sample is a function of ``(seed, split, index)`` only.
        noise_std: per-pixel Gaussian noise (grey levels).
        cache_dir: keep generated scenes on disk under this directory, shared by every run and
            sweep job with the same generator arguments and code
            (:class:`~dynaseg.data.scene_cache.SceneCache`); ``None``: not on disk.
        memory_cache_mb: keep generated scenes in memory up to this many megabytes per dataset
            object (each loader worker has its own); ``0``: regenerate every time.

    Caching never changes a scene: it is the generator's output, byte for byte.
    """

    CLASSES = (
        "sky", "grass", "water", "road", "building", "car", "boat", "tree", "bird", "balloon",
    )  # fmt: skip
    PALETTE = (
        (70, 130, 180), (107, 142, 35), (0, 80, 160), (128, 64, 128), (70, 70, 70),
        (0, 0, 142), (0, 200, 200), (0, 110, 0), (220, 20, 60), (250, 170, 30),
    )  # fmt: skip

    def __init__(
        self,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        size: tuple[int, int] | list[int] = (160, 160),
        length: int = 1000,
        eval_length: int = 200,
        seed: int = 0,
        noise_std: float = 28.0,
        cache_dir: str | Path | None = None,
        memory_cache_mb: float = 256.0,
    ) -> None:
        super().__init__(split, transform)
        if split not in SPLIT_OFFSETS:
            raise ValueError(
                f"SyntheticScenes: split must be one of {list(SPLIT_OFFSETS)}, got {split!r}"
            )
        self.size = (int(size[0]), int(size[1]))
        self.length = int(length if split == "train" else eval_length)
        self.seed = int(seed)
        self.noise_std = float(noise_std)
        self.cache = SceneCache(
            {
                "class": f"{type(self).__module__}.{type(self).__qualname__}",
                **self.generator_args(),
                "code": source_digest(generator_modules(type(self), SyntheticScenes)),
            },
            split,
            self.size,
            cache_dir,
            memory_cache_mb,
        )

    def __len__(self) -> int:
        return self.length

    def generator_args(self) -> dict[str, Any]:
        """What a scene depends on besides ``(split, index)`` (the cache key)."""
        return {"size": list(self.size), "seed": self.seed, "noise_std": self.noise_std}

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(
                f"{type(self).__name__}[{self.split}]: index {index} out of range {self.length}"
            )
        return self.cache.get(index, lambda: self.render(index))

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Generate scene ``index`` (what :meth:`load` caches)."""
        rng = np.random.default_rng([self.seed, SPLIT_OFFSETS[self.split], index])
        return generate_scene(rng, self.size, self.noise_std)


def _stuff_layout(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, int]:
    """Sky above a horizon, a Voronoi partition of grass/water/road below it."""
    label = np.full((h, w), SKY, np.uint8)
    horizon = int(h * rng.uniform(0.25, 0.55))
    n_seeds = int(rng.integers(2, 5))
    seeds = np.stack([rng.uniform(horizon, h, n_seeds), rng.uniform(0, w, n_seeds)], 1)
    kinds = rng.permutation([GRASS, WATER, ROAD, GRASS, WATER, ROAD])[:n_seeds]
    kinds[:3] = rng.permutation([GRASS, WATER, ROAD])[: min(3, n_seeds)]
    yy, xx = np.mgrid[horizon:h, 0:w]
    # Anisotropic distance: regions stretch horizontally like a ground plane seen in perspective.
    d = (yy[None] - seeds[:, 0, None, None]) ** 2 * 4.0 + (xx[None] - seeds[:, 1, None, None]) ** 2
    label[horizon:] = kinds[np.argmin(d, 0)]
    return label, horizon


def _region_points(
    rng: np.random.Generator, label: np.ndarray, cls: int, n: int
) -> list[tuple[int, int]]:
    ys, xs = np.nonzero(label == cls)
    if len(ys) == 0:
        return []
    pick = rng.integers(0, len(ys), n)
    return [(int(ys[i]), int(xs[i])) for i in pick]


def stuff_with_buildings(
    rng: np.random.Generator, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """The stuff layout with buildings standing on the horizon: ``(label, ground, horizon,
    colour)`` — ``ground`` the stuff under the things (context decides their class), ``colour``
    the flat stuff colours, before textures and things."""
    label, horizon = _stuff_layout(rng, h, w)
    ground = label.copy()
    for _ in range(int(rng.integers(0, 4))):
        bw = int(rng.uniform(0.08, 0.3) * w)
        bh = int(rng.uniform(0.1, 0.8) * horizon)
        x0 = int(rng.uniform(-0.1 * w, w - 0.5 * bw))
        label[max(0, horizon - bh) : horizon, max(0, x0) : max(0, x0 + bw)] = BUILDING
    colour = np.zeros((h, w, 3), np.float32)
    for cls, rgb in STUFF_COLOURS.items():
        colour[label == cls] = rgb
    return label, ground, horizon, colour


def photometric_nuisances(
    rng: np.random.Generator, colour: np.ndarray, noise_std: float
) -> np.ndarray:
    """Global nuisances on a clean ``(h, w, 3)`` colour image: illumination gain and colour
    cast, smooth shading, per-pixel Gaussian noise; uint8."""
    h, w = colour.shape[:2]
    gain = rng.uniform(0.7, 1.25)
    cast = rng.normal(0, 12, 3).astype(np.float32)
    shading = cv2.resize(
        rng.normal(0, 18, (4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    image = colour * gain + cast + shading[..., None]
    image += rng.normal(0, noise_std, (h, w, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate_scene(
    rng: np.random.Generator, size: tuple[int, int], noise_std: float = 28.0
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: RGB uint8 image ``(h, w, 3)`` and its uint8 label ``(h, w)``."""
    h, w = size
    label, ground, horizon, colour = stuff_with_buildings(rng, h, w)
    # Texture cues that need a receptive field to see: ripples on water, windows on buildings.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ripples = 14.0 * np.sin(yy * rng.uniform(0.9, 1.4) + np.sin(xx * 0.15) * 2.0)
    colour[label == WATER] += ripples[label == WATER, None]
    windows = ((yy.astype(int) // 3) % 3 == 0) & ((xx.astype(int) // 3) % 3 == 0)
    colour[(label == BUILDING) & windows] -= 35.0

    def thing_colour() -> np.ndarray:
        return THING_COLOURS[rng.integers(len(THING_COLOURS))] + rng.normal(0, 12, 3)

    # Trees on grass: crown of random size (3–40 px radius) with a trunk.
    for y, x in _region_points(rng, ground, GRASS, int(rng.integers(0, 5))):
        r = int(np.exp(rng.uniform(np.log(3), np.log(40))))
        trunk_h = max(1, r // 2)
        cv2.rectangle(label, (x - max(1, r // 5), y - trunk_h), (x + max(1, r // 5), y), TREE, -1)
        cv2.rectangle(
            colour, (x - max(1, r // 5), y - trunk_h), (x + max(1, r // 5), y), (90, 70, 50), -1
        )
        cy = y - trunk_h - r + 1
        cv2.circle(label, (x, cy), r, TREE, -1)
        cv2.circle(colour, (x, cy), r, STUFF_COLOURS[TREE], -1)

    # Vehicles: identical rounded boxes; class from the stuff they stand on (car/road, boat/water).
    n_vehicles = int(rng.integers(1, 7))
    for y, x in _region_points(rng, ground, ROAD, n_vehicles) + _region_points(
        rng, ground, WATER, n_vehicles
    ):
        cls = CAR if ground[y, x] == ROAD else BOAT
        bw = int(np.exp(rng.uniform(np.log(5), np.log(60))))
        bh = max(2, int(bw * rng.uniform(0.35, 0.6)))
        x0, y0 = x - bw // 2, y - bh // 2
        c = thing_colour()
        cv2.rectangle(label, (x0, y0), (x0 + bw, y0 + bh), cls, -1)
        cv2.rectangle(colour, (x0, y0), (x0 + bw, y0 + bh), c.tolist(), -1)
        # a darker "window/cabin" band: the same on cars and boats
        cv2.rectangle(
            colour, (x0 + bw // 4, y0), (x0 + 3 * bw // 4, y0 + bh // 3), (c * 0.6).tolist(), -1
        )

    # Sky things: identical ellipses; small = bird, large = balloon.
    if horizon > 8:
        for _ in range(int(rng.integers(0, 3))):  # balloons
            r = int(rng.uniform(10, 45))
            y, x = int(rng.uniform(0, horizon)), int(rng.uniform(0, w))
            axes = (max(1, int(r * 0.85)), r)
            c = thing_colour()
            cv2.ellipse(label, (x, y), axes, 0, 0, 360, BALLOON, -1)
            cv2.ellipse(colour, (x, y), axes, 0, 0, 360, c.tolist(), -1)
        flock = int(rng.integers(0, 9))
        fy, fx = rng.uniform(0, horizon), rng.uniform(0, w)
        c = thing_colour()
        for _ in range(flock):  # birds fly in flocks of one colour
            r = int(rng.uniform(2, 5.5))
            y = int(np.clip(fy + rng.normal(0, h * 0.08), 0, horizon - 1))
            x = int(np.clip(fx + rng.normal(0, w * 0.12), 0, w - 1))
            axes = (max(1, int(r * 0.85)), r)
            cv2.ellipse(label, (x, y), axes, 0, 0, 360, BIRD, -1)
            cv2.ellipse(colour, (x, y), axes, 0, 0, 360, c.tolist(), -1)

    return photometric_nuisances(rng, colour, noise_std), label
