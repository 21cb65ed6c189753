"""Synthetic scenes with a per-scene zoom: the miniature benchmark for DMNet's claims.

DMNet (He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019) §3.3 argues
two things that a benchmark must be able to show or refute:

1. *Fixed filters suffer from the scale difference between images* ("sensitive to the scale
   difference between images in training and inference"); context-aware filters, generated per
   image, can adapt to it. So the scale of a scene must vary **between images**, in training
   **and** in validation, and it must matter for the label. Each scene is drawn in *scene units*
   on a canvas of ``size / zoom`` pixels and resized to ``size``: a per-scene ``zoom`` drawn
   log-uniformly from ``zoom_range`` (default 0.6–1.6, a 2.67× range) makes everything in it —
   objects, stuff texture — ``zoom`` times bigger in pixels. Illumination, shading and per-pixel
   noise are added **after** the resize, at output resolution, so the noise grain is the same at
   every zoom and cannot betray it.
2. *Context decides ambiguous objects* ("context-aware filters ... embed high-level semantics").
   Two context-decided pairs share their appearance exactly and differ only by the stuff around
   them: a rounded box on ``road`` is a ``car``, on ``water`` a ``boat``; a diamond on ``grass`` is
   a ``sheep``, on ``water`` a ``buoy``. The objects are small (at most about a fifth of the canvas)
   so their surroundings are in view.

A **size-decided pair** joins the two: the same ellipse in the sky is a ``bird`` when its radius is
below ``BIRD_BALLOON_THRESHOLD`` scene pixels, a ``balloon`` above it. In pixels the two overlap
widely (a large bird at zoom 1.6 is bigger than a small balloon at zoom 0.6), so pixel size alone
cannot decide; the model has to infer the zoom. The cues that reveal it are drawn in scene units:
the period of water ripples, of building windows and of grass tufts, and the sizes of the other
objects (cars, boats, trees have fixed scene-size ranges). A head that sees the whole scene — a
pooled context, or filters generated from it — can read them; a fixed local filter must learn
every zoom separately.

**Geometry**: classes are defined in scene units such that the smallest object's square-root area
is at least 20 scene pixels, i.e. ≥ 12 output pixels = 1.5 cells of an output-stride-8 feature map
at the lowest zoom 0.6 (``min_object_cells``).

**A size pair matched in pixels** (``size_pair_pixel_radius``, off by default; docs/ablations.md,
Evidence round 2, R3): with the default pair a bird's pixel radius is 7.5–32 and a balloon's 12–48,
so an ellipse under 12 px is a bird and one over 32 px a balloon at any zoom, and pixel size alone
decides about 72 % of them. With the option set to ``(low, high)`` pixels, every ellipse's pixel
radius is drawn log-uniformly from that band whatever its class and the scene's zoom, and its class
follows from its scene radius (pixel radius / zoom) against the same threshold. With a band half
the zoom range wide in log (``[15, 25]`` for zooms 0.6–1.6) pixel size alone decides about 63 %,
the zoom decides all of them, and at zoom 1 the pixel radius decides all of them (the control).

**The control condition** is the same generator with the zoom fixed at 1 (``zoom_range: [1, 1]``,
``data=synthetic_scales_fixed``). DMNet's claim predicts an *interaction*: the advantage of dynamic
over fixed filters should be larger with the zoom than without it. A generator merely tuned to
favour DMNet would show the advantage in both conditions.

The design — sizes, pairs, zoom range, noise — was fixed before any DMNet result on it was seen.

Every sample is a pure function of ``(seed, split, index)``; ``zoom_of(index)`` returns the zoom
of a scene without rendering it (for the filter-adaptation analysis), and each sample carries it
as ``"zoom"`` (for the zoom oracle of the positive control, ``dynaseg.models.heads.zoom_oracle``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from dynaseg.data.datasets.synthetic import (
    SPLIT_OFFSETS,
    STUFF_COLOURS,
    THING_COLOURS,
    SyntheticScenes,
    _region_points,
    photometric_nuisances,
    stuff_with_buildings,
)

SKY, GRASS, WATER, ROAD, BUILDING, CAR, BOAT, TREE, BIRD, BALLOON, SHEEP, BUOY = range(12)

# Scene-unit geometry (pixels of the zoom-1 canvas). Square-root areas ≥ 20 scene px everywhere.
BIRD_RADIUS = (12.5, 20.0)  # ellipse semi-axis (the other is 0.85×): sqrt area ≥ 20.4
BALLOON_RADIUS = (20.0, 30.0)
BIRD_BALLOON_THRESHOLD = 20.0  # scene px: below → bird, above → balloon
VEHICLE_WIDTH = (29.0, 44.0)  # rounded box, height 0.5× width: sqrt area ≥ 20.5
DIAMOND_HALF_DIAGONAL = (14.5, 21.0)  # sheep / buoy: sqrt area = 1.41 × half diagonal ≥ 20.5
TREE_RADIUS = (12.5, 32.0)
# Texture periods in scene px: the zoom cue (their pixel period is zoom × this).
RIPPLE_PERIOD = 7.0
WINDOW_PERIOD = 9.0
TUFT_PERIOD = 8.0
OUTPUT_STRIDE = 8


def min_object_cells(zoom_low: float, output_stride: int = OUTPUT_STRIDE) -> float:
    """Square-root area of the smallest object at zoom ``zoom_low``, in output-stride cells."""
    smallest = min(
        np.sqrt(np.pi * 0.85) * BIRD_RADIUS[0],
        np.sqrt(0.5) * VEHICLE_WIDTH[0],
        np.sqrt(2.0) * DIAMOND_HALF_DIAGONAL[0],
    )
    return float(smallest * zoom_low / output_stride)


class SyntheticScaleScenes(SyntheticScenes):
    """Deterministic scenes with a per-scene zoom (see the module docstring). The arguments are
    those of :class:`SyntheticScenes` (``size``: the output size, at which the noise is added),
    plus:

    Args:
        zoom_range: ``(low, high)``; the zoom is log-uniform in it, per scene. ``[1, 1]`` is the
            control condition.
        size_pair_pixel_radius: ``None`` (the default pair: bird and balloon radii drawn in scene
            units), or ``(low, high)`` output pixels: every sky ellipse gets a pixel radius
            log-uniform in it whatever its class, and its class follows from its scene radius
            (the size pair matched in pixels; see the module docstring).
    """

    CLASSES = SyntheticScenes.CLASSES + ("sheep", "buoy")
    PALETTE = SyntheticScenes.PALETTE + ((255, 255, 255), (255, 0, 255))
    CONTEXT_DECIDED = ("car", "boat", "sheep", "buoy")
    SCALE_DECIDED = ("bird", "balloon")

    def __init__(
        self,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        size: tuple[int, int] | list[int] = (160, 160),
        length: int = 1000,
        eval_length: int = 200,
        seed: int = 0,
        noise_std: float = 28.0,
        zoom_range: Sequence[float] = (0.6, 1.6),
        cache_dir: str | Path | None = None,
        memory_cache_mb: float = 256.0,
        size_pair_pixel_radius: Sequence[float] | None = None,
    ) -> None:
        low, high = (float(z) for z in zoom_range)
        if not 0 < low <= high:
            raise ValueError(
                f"SyntheticScaleScenes: zoom_range must be [low, high] with 0 < low <= high, "
                f"got {list(zoom_range)}"
            )
        self.zoom_range = (low, high)  # before the base class keys its cache by it
        self.size_pair_pixel_radius = _pixel_band(size_pair_pixel_radius)
        super().__init__(
            split, transform, size, length, eval_length, seed, noise_std, cache_dir,
            memory_cache_mb,
        )  # fmt: skip

    def generator_args(self) -> dict[str, Any]:
        args = {**super().generator_args(), "zoom_range": list(self.zoom_range)}
        if self.size_pair_pixel_radius is not None:  # absent by default: the same cache key
            args["size_pair_pixel_radius"] = list(self.size_pair_pixel_radius)
        return args

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(
                f"SyntheticScaleScenes[{self.split}]: index {index} out of range {self.length}"
            )
        return np.random.default_rng([self.seed, SPLIT_OFFSETS[self.split], index, stream])

    def zoom_of(self, index: int) -> float:
        """The zoom of scene ``index`` (a function of ``(seed, split, index)``)."""
        low, high = self.zoom_range
        u = self._rng(index, 0).uniform()
        return float(np.exp(np.log(low) + u * (np.log(high) - np.log(low))))

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        zoom = self.zoom_of(index)
        return generate_zoomed_scene(
            self._rng(index, 1), self.size, zoom, self.noise_std, self.size_pair_pixel_radius
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The sample of :class:`SegmentationDataset` plus ``"zoom"``: the scene's zoom (float32
        scalar; batches carry one per image), read only by heads that name it in their
        ``scene_inputs`` (the positive control for scale, ``heads.zoom_oracle``)."""
        sample = super().__getitem__(index)
        sample["zoom"] = torch.tensor(self.zoom_of(index), dtype=torch.float32)
        return sample


def _pixel_band(band: Sequence[float] | None) -> tuple[float, float] | None:
    if band is None:
        return None
    values = [float(v) for v in band]
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ValueError(
            "SyntheticScaleScenes: size_pair_pixel_radius must be null or [low, high] output "
            f"pixels with 0 < low <= high, got {band}"
        )
    return values[0], values[1]


def size_pair_ellipse(
    rng: np.random.Generator, pixels_per_scene_unit: float, pixel_radius: tuple[float, float]
) -> tuple[int, float]:
    """Class and scene radius of one sky ellipse of the size pair matched in pixels: the pixel
    radius is log-uniform in ``pixel_radius`` (the same for both classes at every zoom); the
    class is decided by the scene radius against ``BIRD_BALLOON_THRESHOLD``."""
    low, high = pixel_radius
    scene_radius = float(np.exp(rng.uniform(np.log(low), np.log(high)))) / pixels_per_scene_unit
    return (BIRD if scene_radius < BIRD_BALLOON_THRESHOLD else BALLOON), scene_radius


def _render_scene(
    rng: np.random.Generator,
    h: int,
    w: int,
    pixels_per_scene_unit: float = 1.0,
    size_pair_pixel_radius: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Label and clean colour of one scene on an ``h × w`` canvas in scene units (shown at
    ``pixels_per_scene_unit`` output pixels per unit; it matters only for the size pair matched
    in pixels, ``size_pair_pixel_radius``)."""
    label, ground, horizon, colour = stuff_with_buildings(rng, h, w)
    # Stuff textures with a fixed period in scene units: their pixel period reveals the zoom.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ripples = 14.0 * np.sin(2 * np.pi * yy / RIPPLE_PERIOD + np.sin(xx * 0.1) * 2.0)
    colour[label == WATER] += ripples[label == WATER, None]
    phase = rng.uniform(0, WINDOW_PERIOD, 2)
    windows = ((yy + phase[0]) % WINDOW_PERIOD < WINDOW_PERIOD / 3) & (
        (xx + phase[1]) % WINDOW_PERIOD < WINDOW_PERIOD / 3
    )
    colour[(label == BUILDING) & windows] -= 35.0
    tufts = 12.0 * np.sin(2 * np.pi * xx / TUFT_PERIOD) * np.sin(2 * np.pi * yy / TUFT_PERIOD)
    colour[label == GRASS] += tufts[label == GRASS, None]

    def log_uniform(bounds: tuple[float, float]) -> float:
        return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))

    def thing_colour() -> np.ndarray:
        return THING_COLOURS[rng.integers(len(THING_COLOURS))] + rng.normal(0, 12, 3)

    for y, x in _region_points(rng, ground, GRASS, int(rng.integers(0, 3))):  # trees on grass
        r = round(log_uniform(TREE_RADIUS))
        half_trunk, trunk_h = max(2, r // 5), max(3, r // 2)
        cv2.rectangle(label, (x - half_trunk, y - trunk_h), (x + half_trunk, y), TREE, -1)
        cv2.rectangle(colour, (x - half_trunk, y - trunk_h), (x + half_trunk, y), (90, 70, 50), -1)
        cy = y - trunk_h - r + 1
        cv2.circle(label, (x, cy), r, TREE, -1)
        cv2.circle(colour, (x, cy), r, STUFF_COLOURS[TREE], -1)

    # Context pair 1: identical rounded boxes; car on road, boat on water.
    n = int(rng.integers(1, 3))
    for y, x in _region_points(rng, ground, ROAD, n) + _region_points(rng, ground, WATER, n):
        cls = CAR if ground[y, x] == ROAD else BOAT
        bw = round(log_uniform(VEHICLE_WIDTH))
        bh = round(bw * 0.5)
        x0, y0 = x - bw // 2, y - bh // 2
        c = thing_colour()
        cv2.rectangle(label, (x0, y0), (x0 + bw, y0 + bh), cls, -1)
        cv2.rectangle(colour, (x0, y0), (x0 + bw, y0 + bh), c.tolist(), -1)
        cv2.rectangle(
            colour, (x0 + bw // 4, y0), (x0 + 3 * bw // 4, y0 + bh // 3), (c * 0.6).tolist(), -1
        )

    # Context pair 2: identical diamonds; sheep on grass, buoy on water.
    n = int(rng.integers(0, 3))
    for y, x in _region_points(rng, ground, GRASS, n) + _region_points(rng, ground, WATER, n):
        cls = SHEEP if ground[y, x] == GRASS else BUOY
        a = round(log_uniform(DIAMOND_HALF_DIAGONAL))
        poly = np.array([[x, y - a], [x + a, y], [x, y + a], [x - a, y]], np.int32)
        c = thing_colour()
        cv2.fillPoly(label, [poly], cls)
        cv2.fillPoly(colour, [poly], c.tolist())
        cv2.circle(colour, (x, y), max(2, a // 3), (c * 0.6).tolist(), -1)

    # Size pair: identical ellipses in the sky; radius < threshold (scene px) → bird, else balloon.
    if horizon > 8:
        for _ in range(int(rng.integers(0, 4))):
            if size_pair_pixel_radius is not None:
                cls, r = size_pair_ellipse(rng, pixels_per_scene_unit, size_pair_pixel_radius)
            elif rng.uniform() < 0.5:
                cls, r = BIRD, log_uniform(BIRD_RADIUS)
            else:
                cls, r = BALLOON, log_uniform(BALLOON_RADIUS)
            y, x = int(rng.uniform(0, horizon)), int(rng.uniform(0, w))
            axes = (round(r * 0.85), round(r))
            c = thing_colour()
            cv2.ellipse(label, (x, y), axes, 0, 0, 360, cls, -1)
            cv2.ellipse(colour, (x, y), axes, 0, 0, 360, c.tolist(), -1)
    return label, colour


def generate_zoomed_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    zoom: float,
    noise_std: float = 28.0,
    size_pair_pixel_radius: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One scene at ``zoom``: RGB uint8 image ``(h, w, 3)`` and uint8 label ``(h, w)``.

    The scene is rendered on a ``size / zoom`` canvas in scene units and resized to ``size``
    (area/linear for the colour, nearest for the label); the nuisances — illumination gain, colour
    cast, smooth shading and per-pixel noise — are added afterwards, at output resolution.
    ``size_pair_pixel_radius``: the size pair matched in pixels (``SyntheticScaleScenes``).
    """
    h, w = size
    ch, cw = max(8, round(h / zoom)), max(8, round(w / zoom))
    label, colour = _render_scene(rng, ch, cw, w / cw, size_pair_pixel_radius)
    interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    colour = cv2.resize(colour, (w, h), interpolation=interp)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)

    return photometric_nuisances(rng, colour, noise_std), label  # after the zoom: same grain
