"""Dataset modules: one small file per dataset (layout, classes, palette, label mapping)."""

from dynaseg.data.datasets.ade20k import ADE20K
from dynaseg.data.datasets.cityscapes import Cityscapes
from dynaseg.data.datasets.files import FileSegDataset
from dynaseg.data.datasets.pascal_context import PascalContext, PascalContext59
from dynaseg.data.datasets.synthetic import SyntheticScenes
from dynaseg.data.datasets.synthetic_scales import SyntheticScaleScenes
from dynaseg.data.datasets.voc import VOCAug
from dynaseg.errors import DatasetError, DatasetNotFoundError

__all__ = [
    "ADE20K",
    "Cityscapes",
    "DatasetError",
    "DatasetNotFoundError",
    "FileSegDataset",
    "PascalContext",
    "PascalContext59",
    "SyntheticScaleScenes",
    "SyntheticScenes",
    "VOCAug",
]
