"""Models: timm backbones, decode heads, the segmentor."""

from dynaseg.models.backbones import TimmBackbone
from dynaseg.models.heads import DecodeHead, DMHead, DynamicConvModule, FCNHead
from dynaseg.models.segmentor import Segmentor

__all__ = ["DecodeHead", "DMHead", "DynamicConvModule", "FCNHead", "Segmentor", "TimmBackbone"]
