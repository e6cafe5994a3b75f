"""Where the hand-written kernel headers (top-level ``kernels/``) are at run time."""
from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=None)
def kernels_dir() -> Path:
    """Directory holding gc_runtime.h, gc_gemm.h, gc_dialect.h & co.

    ``graphc/kernels/`` (installed package data) first, else ``<repo>/kernels/`` next to the
    graphc package; ``GRAPHC_KERNELS_DIR`` overrides both."""
    env = os.environ.get("GRAPHC_KERNELS_DIR")
    pkg = Path(__file__).resolve().parent.parent  # .../graphc
    candidates = ([Path(env)] if env else []) + [pkg / "kernels", pkg.parent / "kernels"]
    for c in candidates:
        if (c / "gc_dialect.h").is_file() and (c / "gc_runtime.h").is_file():
            return c
    raise FileNotFoundError("graphc kernel headers not found; looked in: "
                            + ", ".join(str(c) for c in candidates))


@functools.lru_cache(maxsize=None)
def read_kernel(name: str) -> str:
    """Text of a file in the kernels directory (e.g. ``"gc_gpu_gemm.h"``)."""
    return (kernels_dir() / name).read_text()
