"""Custom ops: the per-image (dynamic) depthwise convolution of DMNet and CaC-Net, its dispatcher,
the compiled CPU kernel and the ONNX-exportable formulation (:mod:`.dynamic_depthwise`)."""

from dynaseg.models.ops.dynamic_depthwise import (
    DYNAMIC_CONV_IMPLS,
    DynamicConvImpl,
    dynamic_depthwise_conv2d,
    grouped_dynamic_depthwise_conv2d,
    same_padding,
    shift_add_depthwise_conv2d,
)

__all__ = [
    "DYNAMIC_CONV_IMPLS",
    "DynamicConvImpl",
    "dynamic_depthwise_conv2d",
    "grouped_dynamic_depthwise_conv2d",
    "same_padding",
    "shift_add_depthwise_conv2d",
]
