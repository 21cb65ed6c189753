"""The CPU kernel of the dynamic depthwise convolution, compiled on first use.

``csrc/dynamic_depthwise.c`` is plain C (no Python or torch headers), so the system C compiler
builds it for this CPU (``-march=native``) in about a second; the shared library is cached under ``$DYNASEG_CACHE_DIR`` (default
``$XDG_CACHE_HOME/dynaseg`` or ``~/.cache/dynaseg``), keyed by the source, flags and machine, and
called through :mod:`ctypes` on the tensors' memory. Nothing here touches the network.

If there is no C compiler (or ``DYNASEG_NATIVE_KERNELS=0``), :func:`native_kernel` returns ``None``
once with a warning and :func:`dynaseg.models.ops.dynamic_depthwise_conv2d` uses its
grouped-convolution formulation instead: same numbers, slower backward.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from importlib import resources
from pathlib import Path

import torch

SOURCE_NAME = "dynamic_depthwise.c"
CFLAGS = ("-O3", "-shared", "-fPIC", "-pthread", "-std=c11")
# the kernel is built where it runs, so it may use every vector instruction this CPU has (3× on
# AVX-512 vs the baseline x86-64 instructions); a compiler that refuses the flag gets CFLAGS alone
ARCH_FLAGS = ("-march=native",)
NATIVE_DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_tried = False


def cache_dir() -> Path:
    """Where compiled kernels are kept (``$DYNASEG_CACHE_DIR``, else the XDG cache)."""
    if os.environ.get("DYNASEG_CACHE_DIR"):
        return Path(os.environ["DYNASEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dynaseg"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: a cache shared by different machines (a cluster's home
    directory) keeps one library per CPU kind."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _build(source: bytes, compiler: str) -> Path:
    """Compile ``source`` into the cache (atomically: concurrent processes may race here)."""
    signature = " ".join((compiler, *CFLAGS, *ARCH_FLAGS, platform.machine(), platform.system()))
    key = hashlib.sha256(source + signature.encode() + _cpu_signature().encode()).hexdigest()[:16]
    suffix = ".dylib" if platform.system() == "Darwin" else ".so"
    target = cache_dir() / f"dynamic_depthwise-{key}{suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / SOURCE_NAME
        src.write_bytes(source)
        out = Path(tmp) / target.name
        for flags in ((*CFLAGS, *ARCH_FLAGS), CFLAGS):
            proc = subprocess.run(
                [compiler, *flags, str(src), "-o", str(out)], capture_output=True, text=True
            )
            if proc.returncode == 0:
                break
        if proc.returncode != 0:
            raise RuntimeError(f"{compiler} failed on {SOURCE_NAME}:\n{proc.stderr.strip()}")
        os.replace(out, target)
    return target


def _load() -> ctypes.CDLL:
    source = resources.files("dynaseg.models.ops").joinpath("csrc", SOURCE_NAME).read_bytes()
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (looked for $CC, cc, gcc, clang)")
    lib = ctypes.CDLL(str(_build(source, compiler)))
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for suffix in ("f32", "f64"):
        forward = getattr(lib, f"dyn_dw_forward_{suffix}")
        forward.argtypes = [ptr, ptr, ptr, i64, *[i32] * 8]
        forward.restype = i32
        backward = getattr(lib, f"dyn_dw_backward_{suffix}")
        backward.argtypes = [ptr, ptr, ptr, ptr, ptr, i64, *[i32] * 8]
        backward.restype = i32
    return lib


def native_kernel() -> ctypes.CDLL | None:
    """The compiled kernel library, building it on first call; ``None`` (and one warning) if it
    cannot be built here or ``DYNASEG_NATIVE_KERNELS=0``."""
    global _library, _tried
    if _tried:
        return _library
    with _lock:
        if not _tried:
            if os.environ.get("DYNASEG_NATIVE_KERNELS", "1") != "0":
                try:
                    _library = _load()
                except (OSError, RuntimeError, AttributeError) as err:
                    warnings.warn(
                        "dynaseg: could not build the native dynamic depthwise convolution kernel "
                        f"({err}); using the grouped-convolution formulation (same results, "
                        "slower backward). Install a C compiler or set CC to enable it.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            _tried = True
    return _library


def supports(x: torch.Tensor, filters: torch.Tensor) -> bool:
    """Whether the native kernel can take these tensors (CPU, float32/float64, same dtype)."""
    return (
        x.device.type == "cpu"
        and filters.device.type == "cpu"
        and x.dtype in NATIVE_DTYPES
        and filters.dtype == x.dtype
        and native_kernel() is not None
    )


def _suffix(dtype: torch.dtype) -> str:
    return "f32" if dtype == torch.float32 else "f64"


def _check(status: int, what: str) -> None:
    if status != 0:
        raise MemoryError(
            f"dynamic depthwise convolution {what}: the native kernel ran out of memory"
        )


def _shape_args(x: torch.Tensor, filters: torch.Tensor, geometry: tuple[int, int, int]) -> tuple:
    """The kernel's size arguments after its pointers: planes, h, w, kh, kw, dilation, top, left,
    threads (the C signatures in ``csrc/dynamic_depthwise.c``)."""
    b, c, h, w = x.shape
    kh, kw = filters.shape[-2:]
    dilation, top, left = geometry
    return (b * c, h, w, kh, kw, dilation, top, left, torch.get_num_threads())


class NativeDynamicDepthwiseConv(torch.autograd.Function):
    """Per-image depthwise correlation on the CPU with the compiled kernel (forward and both
    gradients; see ``csrc/dynamic_depthwise.c`` for the three sums). ``pad = (left, top)``: how far
    the first tap reaches left of / above the output pixel, as
    :func:`~dynaseg.models.ops.dynamic_depthwise.same_padding` gives."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, filters: torch.Tensor, dilation: int, left: int, top: int):
        x, filters = x.contiguous(), filters.contiguous()
        ctx.save_for_backward(x, filters)
        ctx.geometry = (dilation, top, left)
        out = torch.empty_like(x)
        lib = native_kernel()
        status = getattr(lib, f"dyn_dw_forward_{_suffix(x.dtype)}")(
            x.data_ptr(), filters.data_ptr(), out.data_ptr(), *_shape_args(x, filters, ctx.geometry)
        )
        _check(status, "forward")
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, filters = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_filters = torch.empty_like(filters) if ctx.needs_input_grad[1] else None
        lib = native_kernel()
        status = getattr(lib, f"dyn_dw_backward_{_suffix(x.dtype)}")(
            x.data_ptr(),
            filters.data_ptr(),
            grad_out.data_ptr(),
            None if grad_x is None else grad_x.data_ptr(),
            None if grad_filters is None else grad_filters.data_ptr(),
            *_shape_args(x, filters, ctx.geometry),
        )
        _check(status, "backward")
        return grad_x, grad_filters, None, None, None
