"""Where the hand-written kernel headers (top-level ``kernels/``) are at run time."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from ..errors import BackendUnavailable

ENV = "GRAPHC_KERNELS_DIR"
# the files the C backend compiles with (gc_gemm_core.c: the GEMM driver, built separately)
C_FILES = ("gc_runtime.h", "gc_math.h", "gc_gemm.h", "gc_gemm_core.c")


@functools.lru_cache(maxsize=None)
def kernels_dir() -> Path:
    """Directory holding gc_runtime.h, gc_gemm.h, gc_dialect.h & co.

    ``GRAPHC_KERNELS_DIR`` when set (it must then hold every file a backend reads: a missing
    one raises ``BackendUnavailable`` naming it and the variable, see ``kernel_file``), else
    ``graphc/kernels/`` (installed package data), else ``<repo>/kernels/`` next to the graphc
    package."""
    env = os.environ.get(ENV)
    if env:
        if not Path(env).is_dir():
            raise BackendUnavailable(f"{ENV}={env} is not a directory: point it at a copy of "
                                     f"graphc's kernels/ directory, or unset it")
        return Path(env)
    pkg = Path(__file__).resolve().parent.parent  # .../graphc
    candidates = [pkg / "kernels", pkg.parent / "kernels"]
    for c in candidates:
        if (c / "gc_dialect.h").is_file() and (c / "gc_runtime.h").is_file():
            return c
    raise BackendUnavailable("graphc kernel headers not found; looked in: "
                             + ", ".join(str(c) for c in candidates)
                             + f" (set {ENV} to graphc's kernels/ directory)")


def kernel_file(name: str) -> Path:
    """Path of ``name`` in the kernels directory; ``BackendUnavailable`` naming the file, the
    directory and ``GRAPHC_KERNELS_DIR`` when it is missing (a raw FileNotFoundError from deep in
    a compile said neither what to fix nor that the variable chose the directory)."""
    d = kernels_dir()
    p = d / name
    if not p.is_file():
        env = os.environ.get(ENV)
        where = (f"{ENV}={env}" if env else
                 f"graphc's kernel directory; {ENV} may point at another copy")
        raise BackendUnavailable(f"graphc kernel file {name} is missing from {d} ({where}): "
                                 f"it must hold every file of graphc's kernels/ directory")
    return p


def require(names) -> Path:
    """The kernels directory, after checking that it holds each of ``names``."""
    for name in names:
        kernel_file(name)
    return kernels_dir()


@functools.lru_cache(maxsize=None)
def read_kernel(name: str) -> str:
    """Text of a file in the kernels directory (e.g. ``"gc_gpu_gemm.h"``)."""
    return kernel_file(name).read_text()
