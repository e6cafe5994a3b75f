"""Shared pieces of the GPU backends (CUDA via CuPy/NVRTC, OpenCL via pyopencl).

The kernel text graphc emits is written once against ``kernels/gc_dialect.h``
and compiled under two dialects.  This module finds the kernel headers, builds
program sources for a dialect (header text inlined, so no include paths are
needed), instantiates the GEMM template and computes its launch geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

try:  # graphc's own exception type, when the package provides it
    from graphc.errors import BackendUnavailable  # type: ignore
except Exception:  # pragma: no cover - fallback for a partial checkout

    class BackendUnavailable(RuntimeError):
        """A backend cannot run on this machine (missing package, platform or device)."""


__all__ = [
    "BackendUnavailable",
    "DIALECTS",
    "kernels_dir",
    "read_kernel",
    "dialect_source",
    "program_source",
    "gemm_template",
    "gemm_source",
    "GemmGeometry",
    "gemm_launch_geometry",
    "GEMM_THREADS",
    "GEMM_BK",
    "GEMM_MAX_ROW_GROUPS",
    "expand_includes",
]

DIALECTS = ("cuda", "opencl")

# Must match kernels/gc_gpu_gemm.h
GEMM_THREADS = 256
GEMM_BK = 8
GEMM_DEFAULT_TM = 8
# groups along grid y (row tiles) of one GEMM launch: CUDA's limit of gridDim.y.  Row tiles
# past it are computed by the launched groups in turn (the template's grid-stride loop over
# y), so any M runs in one launch.  Read at each call: tests lower it to exercise that loop.
GEMM_MAX_ROW_GROUPS = 65535


from .kernel_files import kernels_dir, read_kernel  # noqa: E402  (shared with the C backend)
from ..errors import KernelLaunchError  # noqa: E402

CUDA_BLOCKING_HINT = ("\n  (launches are asynchronous: run with CUDA_LAUNCH_BLOCKING=1 for the "
                      "failing kernel to be reported at its launch, with its node and shapes)")


def device_error(dialect: str, device: str, exc: BaseException, hint: str = ""
                 ) -> KernelLaunchError:
    """The error raised when waiting for the device failed with ``exc``: a kernel (or copy)
    enqueued earlier failed while running, which the device reports only now."""
    return KernelLaunchError(
        f"{dialect} device {device} failed while running a step's kernels and copies: "
        f"{type(exc).__name__}: {exc}{hint}")


def _check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown GPU dialect {dialect!r}; expected one of {DIALECTS}")
    return dialect


def dialect_source(dialect: str) -> str:
    """Prelude for a program in ``dialect`` ("cuda" or "opencl").

    For OpenCL it starts with ``#define GC_OPENCL 1`` (harmless: OpenCL C
    compilers also define __OPENCL_VERSION__), then the text of gc_dialect.h.
    """
    _check_dialect(dialect)
    head = "#define GC_OPENCL 1\n" if dialect == "opencl" else ""
    return head + "#line 1 \"gc_dialect.h\"\n" + read_kernel("gc_dialect.h") + "\n"


def program_source(dialect: str, body: str) -> str:
    """Full program text: dialect prelude followed by ``body``."""
    return dialect_source(dialect) + "#line 1 \"graphc_program\"\n" + body


def gemm_template() -> str:
    """Text of kernels/gc_gpu_gemm.h (self-#undef'ing, may be pasted repeatedly)."""
    return read_kernel("gc_gpu_gemm.h")


def gemm_source(
    name: str,
    epilogue: str | None = None,
    extra_params: str = "",
    real: str = "float",
    tm: int = GEMM_DEFAULT_TM,
) -> str:
    """One instance of the GEMM template (no dialect prelude).

    ``epilogue`` is the body of ``GC_GEMM_EPILOGUE(acc, i, j)``, e.g.
    ``"gc_fmaxf((acc) + ep0[j], 0.0f)"``; ``extra_params`` is the text of
    ``GC_GEMM_EXTRA_PARAMS`` *with* its leading comma, e.g.
    ``", const GC_GLOBAL float* GC_RESTRICT ep0"``.
    """
    if tm not in (4, 8):
        raise ValueError("GEMM micro tile must be 4 or 8")
    if real not in ("float", "double"):
        raise ValueError("GEMM element type must be 'float' or 'double'")
    if extra_params and not extra_params.lstrip().startswith(","):
        extra_params = ", " + extra_params
    lines = [f"#define GC_GEMM_NAME {name}"]
    if epilogue is not None:
        lines.append(f"#define GC_GEMM_EPILOGUE(acc, i, j) ({epilogue})")
    if extra_params:
        lines.append(f"#define GC_GEMM_EXTRA_PARAMS {extra_params}")
    lines.append(f"#define GC_GEMM_REAL {real}")
    lines.append(f"#define GC_GEMM_TM {tm}")
    return "\n".join(lines) + "\n" + gemm_template() + "\n"


@dataclass(frozen=True)
class GemmGeometry:
    """Launch geometry of one GEMM instance for an M x N output.

    ``empty`` is True when there is nothing to launch (M == 0 or N == 0);
    grids then have zero extents and the launch must be skipped.
    """

    grid: tuple  # CUDA grid (blocks), 3-D
    block: tuple  # CUDA block (threads), 3-D
    global_size: tuple  # OpenCL global work size, 2-D
    local_size: tuple  # OpenCL local work size, 2-D
    empty: bool


def gemm_launch_geometry(M: int, N: int, tm: int = GEMM_DEFAULT_TM) -> GemmGeometry:
    """Grid/block (CUDA) and global/local sizes (OpenCL) for the GEMM template: one group
    per column tile along x, and along y one per row tile up to ``GEMM_MAX_ROW_GROUPS``
    (each group then loops over every ``GEMM_MAX_ROW_GROUPS``-th row tile)."""
    if M < 0 or N < 0:
        raise ValueError("negative GEMM size")
    bm = bn = 16 * tm
    gx = -(-N // bn)
    gy = min(-(-M // bm), GEMM_MAX_ROW_GROUPS)   # more row tiles: grid-stride over y
    return GemmGeometry(
        grid=(gx, gy, 1),
        block=(GEMM_THREADS, 1, 1),
        global_size=(gx * GEMM_THREADS, gy),
        local_size=(GEMM_THREADS, 1),
        empty=(gx == 0 or gy == 0),
    )


_INCLUDE_RE = None


def expand_includes(text: str) -> str:
    """Paste the kernel headers named by ``#include "gc_*.h"`` lines of generated kernel text.

    ``gc_math.h`` (include-guarded) is pasted once; ``gc_gpu_gemm.h`` (a template that
    ``#undef``s its parameters) at every include.  The compiled program then needs no include
    paths, which NVRTC, cupy.RawModule and OpenCL all handle the same way."""
    import re

    global _INCLUDE_RE
    if _INCLUDE_RE is None:
        _INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"(gc_[A-Za-z0-9_]+\.h)"[ \t]*$',
                                 re.MULTILINE)
    seen: set[str] = set()

    def paste(m):
        name = m.group(1)
        if name == "gc_dialect.h":  # the runtime prepends the prelude of its dialect
            return ""
        if name != "gc_gpu_gemm.h":
            if name in seen:
                return ""
            seen.add(name)
        line = text.count("\n", 0, m.start()) + 2  # the line after the include
        return (f'#line 1 "{name}"\n' + read_kernel(name).rstrip("\n")
                + f'\n#line {line} "graphc_program"')

    return _INCLUDE_RE.sub(paste, text)
