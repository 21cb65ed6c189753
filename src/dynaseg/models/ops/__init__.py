"""Custom ops: the per-image (dynamic) depthwise convolution of DMNet and CaC-Net, its dispatcher,
the compiled CPU kernel and the ONNX-exportable formulation (:mod:`.dynamic_depthwise`), and
adaptive average pooling that exports with a dynamic image size (:mod:`.pooling`). Each op switches
to its exportable form by itself while ``torch.onnx.is_in_onnx_export()``."""

from dynaseg.models.ops.dynamic_depthwise import (
    DYNAMIC_CONV_IMPLS,
    DynamicConvImpl,
    dynamic_depthwise_conv2d,
    grouped_dynamic_depthwise_conv2d,
    same_padding,
    shift_add_depthwise_conv2d,
)
from dynaseg.models.ops.pooling import (
    AdaptiveAvgPool2d,
    adaptive_avg_pool2d,
    matmul_adaptive_avg_pool2d,
)

__all__ = [
    "DYNAMIC_CONV_IMPLS",
    "AdaptiveAvgPool2d",
    "adaptive_avg_pool2d",
    "matmul_adaptive_avg_pool2d",
    "DynamicConvImpl",
    "dynamic_depthwise_conv2d",
    "grouped_dynamic_depthwise_conv2d",
    "same_padding",
    "shift_add_depthwise_conv2d",
]
