"""The CPU kernels, compiled on first use: the dynamic depthwise convolution and adaptive average
pooling.

``csrc/*.c`` is plain C (no Python or torch headers), so the system C compiler builds it for this
CPU (``-march=native``) in about a second into one shared library, cached under
``$DYNASEG_CACHE_DIR`` (default ``$XDG_CACHE_HOME/dynaseg`` or ``~/.cache/dynaseg``), keyed by the
sources, flags and machine, and called through :mod:`ctypes` on the tensors' memory. Nothing here
touches the network.

If there is no C compiler (or ``DYNASEG_NATIVE_KERNELS=0``), :func:`native_kernel` returns ``None``
once with a warning and the callers use PyTorch's operators instead:
:func:`dynaseg.models.ops.dynamic_depthwise_conv2d` its grouped-convolution formulation (same
numbers, slower backward), :func:`dynaseg.models.ops.adaptive_avg_pool2d`
``F.adaptive_avg_pool2d`` (the same numbers bit for bit).
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

# compiled together into one library; split_planes.h is the header both include
SOURCE_NAMES = ("dynamic_depthwise.c", "adaptive_avg_pool.c")
HEADER_NAMES = ("split_planes.h",)
LIBRARY_NAME = "dynaseg-kernels"
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


def _build(files: dict[str, bytes], compiler: str) -> Path:
    """Compile the C sources among ``files`` (name → text, headers included) into one library in
    the cache (atomically: concurrent processes may race here)."""
    signature = " ".join((compiler, *CFLAGS, *ARCH_FLAGS, platform.machine(), platform.system()))
    digest = hashlib.sha256(signature.encode() + _cpu_signature().encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    suffix = ".dylib" if platform.system() == "Darwin" else ".so"
    target = cache_dir() / f"{LIBRARY_NAME}-{digest.hexdigest()[:16]}{suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_bytes(text)
        sources = [str(Path(tmp) / name) for name in files if name.endswith(".c")]
        out = Path(tmp) / target.name
        for flags in ((*CFLAGS, *ARCH_FLAGS), CFLAGS):
            proc = subprocess.run(
                [compiler, *flags, *sources, "-o", str(out)], capture_output=True, text=True
            )
            if proc.returncode == 0:
                break
        if proc.returncode != 0:
            raise RuntimeError(
                f"{compiler} failed on {', '.join(SOURCE_NAMES)}:\n{proc.stderr.strip()}"
            )
        os.replace(out, target)
    return target


def _load() -> ctypes.CDLL:
    csrc = resources.files("dynaseg.models.ops").joinpath("csrc")
    files = {name: csrc.joinpath(name).read_bytes() for name in (*SOURCE_NAMES, *HEADER_NAMES)}
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (looked for $CC, cc, gcc, clang)")
    lib = ctypes.CDLL(str(_build(files, compiler)))
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for suffix in ("f32", "f64"):
        forward = getattr(lib, f"dyn_dw_forward_{suffix}")
        forward.argtypes = [ptr, ptr, ptr, i64, *[i32] * 8]
        forward.restype = i32
        backward = getattr(lib, f"dyn_dw_backward_{suffix}")
        backward.argtypes = [ptr, ptr, ptr, ptr, ptr, i64, *[i32] * 8]
        backward.restype = i32
        pool = getattr(lib, f"adaptive_avg_pool2d_{suffix}")
        pool.argtypes = [ptr, ptr, i64, *[i32] * 5]
        pool.restype = i32
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
                        f"dynaseg: could not build the native CPU kernels ({err}); using the "
                        "grouped-convolution formulation of the dynamic depthwise convolution "
                        "(same results, slower backward) and PyTorch's adaptive average pooling. "
                        "Install a C compiler or set CC to enable them.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            _tried = True
    return _library


def supports(*tensors: torch.Tensor) -> bool:
    """Whether the native kernels can take these tensors: CPU, one dtype of ``NATIVE_DTYPES``, not
    while ``torch.compile`` or ``torch.jit.trace`` records the graph (a ctypes call is invisible
    to both), and the library built."""
    dtype = tensors[0].dtype
    return (
        dtype in NATIVE_DTYPES
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and native_kernel() is not None
    )


def _suffix(dtype: torch.dtype) -> str:
    return "f32" if dtype == torch.float32 else "f64"


def _check(status: int, what: str) -> None:
    if status != 0:
        raise MemoryError(f"{what}: the native kernel ran out of memory")


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
        _check(status, "dynamic depthwise convolution forward")
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
        _check(status, "dynamic depthwise convolution backward")
        return grad_x, grad_filters, None, None, None


def can_pool(x: torch.Tensor) -> bool:
    """Whether :func:`adaptive_avg_pool2d` can take ``x``: a non-empty contiguous ``(B, C, H, W)``
    CPU tensor of float32/float64 whose gradient is not needed (the kernel has no backward; a
    frozen backbone's context, validation and inference need none)."""
    return (
        x.dim() == 4
        and x.numel() > 0
        and x.is_contiguous()
        and not (x.requires_grad and torch.is_grad_enabled())
        and supports(x)
    )


def adaptive_avg_pool2d(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, (out_h, out_w))`` with the compiled kernel, equal bit for bit
    (``csrc/adaptive_avg_pool.c``: the same bins and order of summation, several planes at once);
    ``x`` as :func:`can_pool` accepts."""
    b, c, h, w = x.shape
    out = x.new_empty(b, c, out_h, out_w)
    status = getattr(native_kernel(), f"adaptive_avg_pool2d_{_suffix(x.dtype)}")(
        x.data_ptr(), out.data_ptr(), b * c, h, w, out_h, out_w, torch.get_num_threads()
    )
    _check(status, "adaptive average pooling")
    return out
