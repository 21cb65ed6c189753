"""Predict label maps for image files: the recipe behind ``src/predict.py``.

A checkpoint and a folder, glob, file list (``.txt``, one path per line) or single image in;
per image out: ``<name>.png``, an indexed PNG whose pixel values are the class indices and whose
palette colours them (readable as labels *and* viewable), and ``<name>_overlay.png``, the image
beside its colour-blended prediction. Images of any size: each is run alone, through the same
evaluation resize (``data.test_scale``) and inference mode (``model.inference``) as ``src/eval.py``,
and the prediction is returned at the image's original size.

Test-server submissions (mmsegmentation's ``format_only``; ``submission.format``, presets in
conf/server/): instead of the viewable PNGs, each image's prediction is written as the server
takes it and the files are zipped (``submission.archive``):

- ``cityscapes``: ``<city>_<seq>_<frame>_leftImg8bit.png``, 8-bit, Cityscapes *label ids* (the
  train ids the model predicts mapped back, as the benchmark's ``evalPixelLevelSemanticLabeling``
  reads them);
- ``voc2012``: ``results/VOC2012/Segmentation/comp6_test_cls/<id>.png``, an indexed PNG with the
  VOC colour map, values the 21 class indices (comp6: trained with data outside VOC, ImageNet);
- ``ade20k``: ``<name>.png``, 8-bit, values 1-150 (the scene-parsing benchmark's class ids; 0 is
  "other", which a model never predicts).
"""

from __future__ import annotations

import glob
import json
import re
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm import tqdm

from dynaseg.data.datasets.cityscapes import CITYSCAPES_LABELS
from dynaseg.data.transforms import build_eval_transform
from dynaseg.errors import ConfigError, UserError
from dynaseg.metrics import predicted_labels
from dynaseg.palettes import colorize, indexed_image, model_palette, overlay, voc_colormap
from dynaseg.run.checkpoints import checkpoint_file, load_module
from dynaseg.run.cpu_memory import apply_cpu_memory_policy
from dynaseg.training.module import SegmentationModule

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
NOT_AN_IMAGE = f"not an image (expected {', '.join(IMAGE_SUFFIXES)})"


class NoImagesError(UserError, FileNotFoundError):
    """The inputs name no readable image."""


class SkippedInputsError(UserError):
    """Some inputs were not predicted (not an image, unreadable); the others were written."""


Skipped = tuple[Path, str]  # an input file left out, and why


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def resolve_inputs(
    inputs: str | Path | Sequence[str | Path], skipped: list[Skipped] | None = None
) -> list[Path]:
    """Image paths from a folder (its images, sorted, not recursive), a glob pattern, a ``.txt``
    list (one path per line, relative paths from the list's folder, ``#`` comments) or one image;
    a list may mix these. Other files in a folder (not hidden ones) are appended to ``skipped``
    with the reason. Raises :class:`NoImagesError` naming what was given if nothing is found.
    """
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    found: list[Path] = []
    left_out: list[Skipped] = []
    for item in items:
        text = str(item)
        path = Path(text).expanduser()
        if any(ch in text for ch in "*?["):
            found += sorted(Path(p) for p in glob.glob(text, recursive=True) if is_image(Path(p)))
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            found += [p for p in files if is_image(p)]
            left_out += [(p, NOT_AN_IMAGE) for p in files if not is_image(p)]
        elif path.is_file() and path.suffix.lower() == ".txt":
            for line in path.read_text().splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                entry = Path(line).expanduser()
                entry = entry if entry.is_absolute() else path.parent / entry
                if not entry.is_file():
                    raise NoImagesError(f"{path}: listed image '{line}' does not exist ({entry})")
                found.append(entry)
        elif path.is_file() and is_image(path):
            found.append(path)
        elif path.exists():
            raise NoImagesError(
                f"input '{text}' is neither an image ({', '.join(IMAGE_SUFFIXES)}), a folder, "
                "nor a .txt list of images"
            )
        else:
            raise NoImagesError(f"input '{text}' does not exist")
    if not found:
        raise NoImagesError(
            f"no images found in {[str(i) for i in items]} (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    if skipped is not None:
        skipped += left_out
    return found


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Output names: the file stem, with ``_1``, ``_2``… appended when stems repeat."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        names.append(p.stem if n == 0 else f"{p.stem}_{n}")
    return names


def label_image(label: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """Indexed ("P") PNG: values are class indices, the palette colours them (≤ 256 classes);
    more classes get an RGB image."""
    if len(palette) <= 256:
        return indexed_image(label, palette)
    return Image.fromarray(colorize(label, palette))


def overlay_image(
    image: np.ndarray, label: np.ndarray, palette: Sequence[Sequence[int]], opacity: float
) -> Image.Image:
    """The image (left) beside the image blended with the coloured prediction (right)."""
    return Image.fromarray(np.concatenate([image, overlay(image, label, palette, opacity)], axis=1))


# train id (0..18) -> Cityscapes label id
CITYSCAPES_TRAIN_TO_LABEL_ID = np.array(
    [i for t in range(19) for _, i, train_id in CITYSCAPES_LABELS if train_id == t], np.uint8
)


@dataclass(frozen=True)
class SubmissionFormat:
    """What one benchmark server takes: the class count, the file path of an image's prediction
    inside the archive, the PNG encoding and (optionally) the image names it accepts."""

    num_classes: int
    member: Callable[[str], str]  # image name (stem) -> path in the archive
    encode: Callable[[np.ndarray], Image.Image]  # predicted class indices -> the PNG
    name_pattern: str | None = None  # a regex every image stem must match
    name_hint: str = ""


SUBMISSION_FORMATS: dict[str, SubmissionFormat] = {
    "cityscapes": SubmissionFormat(
        19,
        lambda stem: f"{stem}.png",
        lambda label: Image.fromarray(CITYSCAPES_TRAIN_TO_LABEL_ID[label]),
        r"[a-z]+_\d{6}_\d{6}_leftImg8bit",
        "<city>_<seq>_<frame>_leftImg8bit.png, the Cityscapes test images' names",
    ),
    "voc2012": SubmissionFormat(
        21,
        lambda stem: f"results/VOC2012/Segmentation/comp6_test_cls/{stem}.png",
        lambda label: label_image(label, voc_colormap(256)),
    ),
    "ade20k": SubmissionFormat(
        150,
        lambda stem: f"{stem}.png",
        lambda label: Image.fromarray((label + 1).astype(np.uint8)),
    ),
}


def submission_format(name: str, num_classes: int, paths: Sequence[Path]) -> SubmissionFormat:
    """The server format ``name`` after checking the model and the inputs fit it: the class
    count, the images' names (as the server matches them) and no name twice."""
    if name not in SUBMISSION_FORMATS:
        raise ConfigError(
            f"submission.format={name!r}: expected one of {sorted(SUBMISSION_FORMATS)} or null"
        )
    fmt = SUBMISSION_FORMATS[name]
    if num_classes != fmt.num_classes:
        raise ConfigError(
            f"submission.format={name}: the checkpoint predicts {num_classes} classes; the "
            f"{name} server takes {fmt.num_classes}"
        )
    stems = [p.stem for p in paths]
    if fmt.name_pattern:
        wrong = [p for p in paths if not re.fullmatch(fmt.name_pattern, p.stem)]
        if wrong:
            raise UserError(
                f"submission.format={name}: {len(wrong)} image(s) not named {fmt.name_hint} "
                f"(e.g. '{wrong[0]}')"
            )
    if len(set(stems)) != len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise UserError(
            f"submission.format={name}: image name(s) {twice[:5]} occur more than once; each "
            "image's prediction is one file named after it"
        )
    return fmt


def write_archive(output_dir: Path, members: Sequence[str], archive: Path) -> Path:
    """Zip ``output_dir/<member>`` for every member, stored under its member path."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member in members:
            zf.write(output_dir / member, member)
    return archive


def keep_listed(paths: Sequence[Path], ids_file: str | Path) -> list[Path]:
    """The images whose name (stem) is listed in ``ids_file`` (one id per line, e.g. VOC's
    ``ImageSets/Segmentation/test.txt``), in the file's order; a listed id without an image is an
    error naming it."""
    ids_path = Path(ids_file).expanduser()
    if not ids_path.is_file():
        raise NoImagesError(f"ids_file='{ids_path}' does not exist (expected one image id a line)")
    ids = [line.strip() for line in ids_path.read_text().splitlines() if line.strip()]
    by_stem = {p.stem: p for p in paths}
    missing = [i for i in ids if i not in by_stem]
    if missing:
        raise NoImagesError(
            f"ids_file='{ids_path}': {len(missing)} listed id(s) have no image in the inputs "
            f"(e.g. '{missing[0]}')"
        )
    return [by_stem[i] for i in ids]


def load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as err:
        raise NoImagesError(f"cannot read image '{path}': {err}") from err


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_images(
    model: SegmentationModule,
    paths: Sequence[Path],
    output_dir: Path,
    palette: Sequence[Sequence[int]],
    test_scale: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    overlay: bool = True,
    opacity: float = 0.5,
    device: torch.device | None = None,
    skipped: list[Skipped] | None = None,
    submission: SubmissionFormat | None = None,
) -> list[dict[str, Any]]:
    """Predict every image (one at a time, any size) and write its label/overlay PNGs, or with
    ``submission`` its prediction in that server's format (at ``output_dir/<member path>``).

    Returns one record per image: source, written files, height, width and the classes present.
    An image that cannot be read is appended to ``skipped`` (with the reason) and the others are
    still predicted; without a ``skipped`` list it raises :class:`NoImagesError`.
    """
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    kwargs = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    transform = build_eval_transform(test_scale, **kwargs)
    output_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path, name in tqdm(
        list(zip(paths, unique_names(paths), strict=True)), desc="predict", unit="img"
    ):
        try:
            image = load_rgb(path)
        except NoImagesError as err:
            if skipped is None:
                raise
            skipped.append((path, str(err.__cause__ or err)))
            continue
        tensor = transform(image=image)["image"].float().unsqueeze(0).to(device)
        scores = model(tensor, image.shape[:2])
        label = predicted_labels(scores)[0].cpu().numpy()
        if submission is None:
            label_path = output_dir / f"{name}.png"
            label_image(label, palette).save(label_path)
        else:
            label_path = output_dir / submission.member(name)
            label_path.parent.mkdir(parents=True, exist_ok=True)
            submission.encode(label).save(label_path)
        record: dict[str, Any] = {
            "image": str(path),
            "label": str(label_path),
            "height": int(image.shape[0]),
            "width": int(image.shape[1]),
            "classes": sorted(int(c) for c in np.unique(label)),
        }
        if overlay:
            overlay_path = output_dir / f"{name}_overlay.png"
            overlay_image(image, label, palette, opacity).save(overlay_path)
            record["overlay"] = str(overlay_path)
        records.append(record)
    return records


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """``src/predict.py``: load ``cfg.ckpt_path``, apply ``cfg.model.inference`` overrides,
    predict ``cfg.inputs`` into ``cfg.output_dir`` and write ``predictions.json`` there."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        raise ConfigError(
            "predict needs a checkpoint: python src/predict.py ckpt_path=/path/to/file.ckpt "
            "inputs=/path/to/images"
        )
    ckpt_path = checkpoint_file(ckpt)
    if cfg.get("inputs") in (None, "", "???"):
        raise ConfigError("predict needs inputs=<folder | glob | list.txt | image>")
    inputs = cfg.inputs
    inputs = OmegaConf.to_container(inputs) if OmegaConf.is_config(inputs) else inputs
    skipped: list[Skipped] = []
    paths = resolve_inputs(inputs, skipped)
    if cfg.get("ids_file"):
        paths = keep_listed(paths, cfg.ids_file)

    apply_cpu_memory_policy(cfg)
    model = load_module(ckpt_path)
    server = (cfg.get("submission") or {}).get("format")
    submission = submission_format(server, model.hparams.num_classes, paths) if server else None
    inference = model.set_inference(cfg.get("model", {}).get("inference"))
    data_cfg = cfg.get("data")
    target = data_cfg.get("dataset", {}).get("_target_") if data_cfg else None
    palette, source = model_palette(model, get_class(target) if target else None)
    output_dir = Path(cfg.output_dir)
    rank_zero_info(
        f"predicting {len(paths)} image(s) with {ckpt_path.name} ({inference.describe()}), "
        f"palette from {source}, into {output_dir}"
    )
    records = predict_images(
        model,
        paths,
        output_dir,
        palette,
        test_scale=data_cfg.get("test_scale") if data_cfg else None,
        mean=data_cfg.get("mean") if data_cfg else None,
        std=data_cfg.get("std") if data_cfg else None,
        overlay=bool(cfg.get("overlay", True)) and submission is None,
        opacity=float(cfg.get("opacity", 0.5)),
        device=choose_device(str(cfg.get("device", "auto"))),
        skipped=skipped,
        submission=submission,
    )
    summary = {
        "checkpoint": str(ckpt_path),
        "inference": inference.to_dict(),
        "palette_source": source,
        "class_names": list(model.class_names),
        "images": records,
        "skipped": [{"file": str(path), "reason": reason} for path, reason in skipped],
    }
    if submission is not None and not skipped:  # a server scores every test image or none
        members = [str(Path(r["label"]).relative_to(output_dir)) for r in records]
        archive = write_archive(output_dir, members, Path(cfg.submission.archive))
        summary["submission"] = {"format": server, "archive": str(archive), "files": len(members)}
        rank_zero_info(f"{server} submission: {archive} ({len(members)} files)")
    (output_dir / "predictions.json").write_text(json.dumps(summary, indent=2))
    rank_zero_info(f"wrote {len(records)} prediction(s) to {output_dir}")
    if skipped:
        for path, reason in skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr, flush=True)
        names = ", ".join(path.name for path, _ in skipped)
        raise SkippedInputsError(
            f"{len(skipped)} of {len(skipped) + len(records)} input file(s) skipped ({names}): "
            f"listed above and in {output_dir / 'predictions.json'}; "
            f"{len(records) or 'no'} image(s) predicted"
        )
    return records
