"""Decode heads: each takes the backbone's feature list and returns logits."""

from dynaseg.models.heads.aspp import ASPPHead, ASPPModule
from dynaseg.models.heads.base import DecodeHead
from dynaseg.models.heads.cacnet import CaCHead, CaCModule
from dynaseg.models.heads.dmnet import DMHead, DynamicConvModule
from dynaseg.models.heads.dsnet import DSHead, DynamicSamplingConv2d
from dynaseg.models.heads.fcn import FCNHead
from dynaseg.models.heads.inception import InceptionHead
from dynaseg.models.heads.psp import PSPHead
from dynaseg.models.heads.sac import SACHead
from dynaseg.models.heads.zoom_oracle import ZoomFiLMHead

__all__ = [
    "ASPPHead",
    "ASPPModule",
    "CaCHead",
    "CaCModule",
    "DecodeHead",
    "DMHead",
    "DSHead",
    "DynamicConvModule",
    "DynamicSamplingConv2d",
    "FCNHead",
    "InceptionHead",
    "PSPHead",
    "SACHead",
    "ZoomFiLMHead",
]
