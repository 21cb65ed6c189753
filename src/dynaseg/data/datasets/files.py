"""A shared base for datasets stored on disk as (image, label) file pairs.

A dataset module subclasses :class:`FileSegDataset` and supplies

- ``CLASSES`` / ``PALETTE`` (one RGB triple per class),
- ``LAYOUT`` (the expected directory tree, printed when the root is missing) and ``PREPARE``
  (how to obtain / prepare it),
- :meth:`FileSegDataset.list_samples` — the expected ``(name, image, label)`` paths of a split,
- optionally :meth:`FileSegDataset.label_lut` — a 256-entry lookup table from raw label values to
  class indices (``-1`` marks a raw value that must not occur).

The base class reads images with OpenCV (RGB uint8) and labels with PIL (so palette PNGs give
their indices, not colours), applies the lookup table, and checks every sample as it is loaded:
a missing or unreadable file, an image/label size mismatch and a label value outside the valid
set each raise a :class:`DatasetError` that names the file and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from dynaseg.data.base import SegmentationDataset
from dynaseg.errors import DatasetError, DatasetNotFoundError

IGNORE = 255
_MAX_LISTED = 5  # problems quoted in one error message

# OpenCV >= 4.10 can decode straight to RGB (saves a colour conversion per image).
_IMREAD_RGB: int | None = getattr(cv2, "IMREAD_COLOR_RGB", None)


@dataclass(frozen=True)
class Sample:
    """One expected image/label pair of a split (paths need not exist)."""

    name: str
    image: Path
    label: Path


@dataclass
class SampleReport:
    """What :meth:`FileSegDataset.inspect` found for one sample (used by the dataset checker)."""

    sample: Sample
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)
    class_counts: np.ndarray | None = None  # pixels per class (+ ignore in the last slot)
    image_size: tuple[int, int] | None = None


JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG", b"IEND\xaeB`\x82"


def truncation_problem(path: Path, data: bytes | np.ndarray, size: int | None = None) -> str | None:
    """Why a JPEG/PNG file is cut short, judged from its first and last bytes (a JPEG ends with the
    EOI marker, a PNG with the IEND chunk; some writers pad a few bytes after them). libjpeg
    would only warn, without the file name, and decode the missing part as grey."""
    head, tail = bytes(data[:4]), bytes(data[-32:])
    size = len(data) if size is None else size
    if head.startswith(JPEG_START) and JPEG_END not in tail:
        return f"image file {path} is truncated ({size} bytes, no JPEG end marker)"
    if head.startswith(PNG_START) and PNG_END not in tail:
        return f"image file {path} is truncated ({size} bytes, no PNG IEND chunk)"
    return None


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``; :class:`DatasetError` if it is missing,
    truncated or unreadable."""
    try:
        data = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist") from None
    truncated = truncation_problem(path, data)
    if truncated:
        raise DatasetError(f"{truncated}; expected a complete JPEG/PNG image")
    flag = _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR
    image = cv2.imdecode(data, flag) if data.size else None
    if image is None:
        raise DatasetError(
            f"image file {path} is unreadable ({data.size} bytes); expected a JPEG/PNG image"
        )
    if _IMREAD_RGB is None:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


IMAGE_MODES = ("RGB", "L")  # 8-bit colour or greyscale (greyscale is read as grey RGB)


def check_image_file(path: Path) -> tuple[tuple[int, int] | None, list[tuple[str, str]]]:
    """Check an image file without a full-resolution decode: header (size, mode), truncation
    (:func:`truncation_problem`) and a decode PIL rejects (JPEGs decoded at 1/8 scale, PNG chunks
    CRC-verified).
    Returns ``((h, w) or None, [(kind, message), ...])``."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 32))
            tail = f.read()
    except FileNotFoundError:
        return None, [("missing_image", f"image file {path} does not exist")]
    truncated = truncation_problem(path, head + tail if size > 40 else head, size)
    if truncated:
        return None, [("truncated", truncated)]
    try:
        with Image.open(path) as img:
            hw, mode, fmt = (img.height, img.width), img.mode, img.format
            if fmt == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
                img.load()
            elif fmt == "PNG":
                img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return None, [
            ("unreadable", f"image file {path} is unreadable ({err}); expected a JPEG/PNG image")
        ]
    if mode not in IMAGE_MODES:
        return hw, [
            (
                "bad_format",
                f"image file {path} is a {mode} {fmt} image; expected 8-bit "
                "RGB or greyscale (convert it, e.g. drop the alpha channel)",
            )
        ]
    return hw, []


def read_label(path: Path) -> np.ndarray:
    """Read a single-channel label PNG as uint8 ``(H, W)`` (palette PNGs give their indices)."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            array = np.asarray(img)
    except FileNotFoundError:
        raise DatasetError(f"label file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(
            f"label file {path} is unreadable ({err}); expected a single-channel PNG"
        ) from None
    if array.ndim != 2:
        raise DatasetError(
            f"label file {path} is a {mode} image with shape {array.shape}; expected a "
            "single-channel PNG of class indices (palette 'P' or greyscale 'L'), not colours"
        )
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(
                f"label file {path} ({mode}) has values {int(array.min())}..{int(array.max())}; "
                "expected 8-bit class indices 0..255"
            )
        array = array.astype(np.uint8)
    return array


def read_split_file(path: Path, hint: str = "") -> list[str]:
    """Read a split list (one id per line, blank lines ignored); names the file if it is missing."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"split file {path} does not exist; expected a text file with one image id per line"
            + (f". {hint}" if hint else "")
        )
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def identity_lut(num_classes: int, ignore_index: int = IGNORE) -> np.ndarray:
    """Raw value = class index; ``0..num_classes-1`` and ``ignore_index`` are the valid values."""
    lut = np.full(256, -1, np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[ignore_index] = ignore_index
    return lut


def reduce_zero_lut(num_classes: int, ignore_index: int = IGNORE) -> np.ndarray:
    """mmseg ``reduce_zero_label``: raw 0 → ignore, raw ``k`` → ``k-1`` for ``k = 1..num_classes``;
    raw ``ignore_index`` stays ignored."""
    lut = np.full(256, -1, np.int16)
    lut[0] = ignore_index
    lut[1 : num_classes + 1] = np.arange(num_classes)
    lut[ignore_index] = ignore_index
    return lut


def describe_values(values: Iterable[int], limit: int = 12) -> str:
    values = [int(v) for v in values]
    text = ", ".join(str(v) for v in values[:limit])
    return text + (f", … ({len(values)} values)" if len(values) > limit else "")


class FileSegDataset(SegmentationDataset):
    """Base of the on-disk datasets (see module docstring).

    Args:
        root: dataset root (e.g. ``<data_dir>/ADEChallengeData2016``).
        split: split name (dataset specific: ``train``/``val``, ``trainaug``, ...).
        transform: albumentations pipeline applied in ``__getitem__``.
        strict: raise at construction if any image or label file of the split is missing;
            with ``strict=False`` incomplete pairs are dropped and listed in ``self.problems``
            (the dataset checker uses this).
        check_values: check label values and image/label sizes on every load (cheap: one
            ``bincount`` per label).
    """

    LAYOUT: ClassVar[str] = ""
    PREPARE: ClassVar[str] = ""
    SPLITS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        strict: bool = True,
        check_values: bool = True,
    ) -> None:
        super().__init__(split, transform)
        self.root = Path(root).expanduser()
        self.check_values = check_values
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.missing_root_message())
        if self.SPLITS and split not in self.SPLITS:
            raise DatasetError(
                f"{type(self).__name__}: unknown split {split!r}; "
                f"expected one of {list(self.SPLITS)}"
            )
        self._default_lut = self.label_lut()
        self.problems: list[tuple[str, str]] = []  # (kind, message) for incomplete pairs
        self.samples: list[Sample] = []
        for sample in self.list_samples(split):
            if not sample.image.is_file():
                self.problems.append(
                    (
                        "missing_image",
                        f"{sample.name}: image {sample.image} does not exist "
                        f"(its label would be {sample.label})",
                    )
                )
            elif not sample.label.is_file():
                self.problems.append(
                    (
                        "missing_label",
                        f"{sample.name}: image {sample.image} has no label; "
                        f"expected {sample.label}",
                    )
                )
            else:
                self.samples.append(sample)
        if strict and self.problems:
            raise DatasetError(self._problem_summary(self.problems))
        if strict and not self.samples:
            raise DatasetError(
                f"{type(self).__name__}: split {split!r} under {self.root} has no image/label "
                f"pairs.\nExpected layout:\n{self.LAYOUT}"
            )

    # -- to implement -------------------------------------------------------------------------
    def list_samples(self, split: str) -> list[Sample]:  # pragma: no cover - abstract
        """Expected ``(name, image, label)`` paths of ``split`` (the base checks existence)."""
        raise NotImplementedError

    def label_lut(self) -> np.ndarray:
        """256-entry int16 table raw value → class index / 255; ``-1`` = value must not occur."""
        return identity_lut(self.num_classes, self.ignore_index)

    def lut_for(self, sample: Sample) -> np.ndarray:
        """Lookup table of one sample (override when label formats differ per file)."""
        return self._default_lut

    # -- messages -------------------------------------------------------------------------------
    def missing_root_message(self) -> str:
        msg = (
            f"{type(self).__name__}: dataset root {self.root} does not exist.\n"
            f"Expected layout:\n{self.LAYOUT.rstrip()}\n"
        )
        if self.PREPARE:
            msg += f"Prepare it with:\n{self.PREPARE.rstrip()}\n"
        return msg + "Point paths.data_dir (or data.dataset.root) at the directory holding it."

    def _problem_summary(self, problems: list[tuple[str, str]]) -> str:
        lines = [m for _, m in problems[:_MAX_LISTED]]
        more = len(problems) - len(lines)
        tail = f"\n  … and {more} more (run scripts/check_dataset.py for the full list)"
        return (
            f"{type(self).__name__} split {self.split!r} under {self.root}: "
            f"{len(problems)} problem(s) (missing pairs, unexpected files):\n  "
            + "\n  ".join(lines)
            + (tail if more else "")
        )

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        return self.samples[index].name

    def valid_values_text(self) -> str:
        return f"class indices 0..{self.num_classes - 1} or {self.ignore_index} (ignore)"

    def validate_label(self, raw: np.ndarray, sample: Sample) -> np.ndarray:
        """The one label check (training loads and ``scripts/check_dataset.py`` / the pre-flight
        check both call it): the histogram of raw values, or :class:`DatasetError` naming the
        file if a raw value is neither a class nor ignore."""
        lut = self.lut_for(sample)
        counts = np.bincount(raw.ravel(), minlength=256)
        bad = np.flatnonzero((counts > 0) & (lut < 0))
        if len(bad):
            raise DatasetError(self._bad_values_message(sample, lut, bad))
        return counts

    def map_label(self, raw: np.ndarray, sample: Sample) -> np.ndarray:
        """Raw label → class indices / ignore; raises if a raw value is not in the table."""
        lut = self.lut_for(sample)
        if self.check_values:
            self.validate_label(raw, sample)
        return np.where(lut < 0, self.ignore_index, lut).astype(np.uint8)[raw]

    def _bad_values_message(self, sample: Sample, lut: np.ndarray, bad: np.ndarray) -> str:
        raw_ok = np.flatnonzero(lut >= 0)
        return (
            f"label file {sample.label} has raw value(s) {describe_values(bad)} that are neither a "
            f"class nor ignore; expected raw values {describe_values(raw_ok, 8)} (mapped to "
            f"{self.valid_values_text()})"
        )

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[index]
        image = read_image(sample.image)
        raw = read_label(sample.label)
        if self.check_values and raw.shape != image.shape[:2]:
            raise DatasetError(self._size_message(sample, image.shape[:2], raw.shape))
        return image, self.map_label(raw, sample)

    @staticmethod
    def _size_message(sample: Sample, image_hw: tuple[int, ...], label_hw: tuple[int, ...]) -> str:
        return (
            f"label file {sample.label} is {label_hw[1]}×{label_hw[0]} (w×h) but its image "
            f"{sample.image} is {image_hw[1]}×{image_hw[0]}; expected the same size"
        )

    def inspect(self, index: int) -> SampleReport:
        """Check one sample without raising (``scripts/check_dataset.py`` and the pre-flight
        check): image header, truncation and compressed stream (:func:`check_image_file`), label
        readability, sizes, and label values (:meth:`validate_label`, as loading does)."""
        sample = self.samples[index]
        report = SampleReport(sample)
        report.image_size, report.problems = check_image_file(sample.image)
        try:
            raw = read_label(sample.label)
        except DatasetError as err:
            report.problems.append(("unreadable", str(err)))
            return report
        if report.image_size is not None and raw.shape != report.image_size:
            message = self._size_message(sample, report.image_size, raw.shape)
            report.problems.append(("size_mismatch", message))
        try:
            counts = self.validate_label(raw, sample)
        except DatasetError as err:
            report.problems.append(("bad_values", str(err)))
            counts = np.bincount(raw.ravel(), minlength=256)
        lut = self.lut_for(sample)
        mapped = np.where(lut < 0, self.ignore_index, lut)
        per_class = np.bincount(mapped, weights=counts, minlength=256)
        report.class_counts = np.append(per_class[: self.num_classes], per_class[self.ignore_index])
        return report
