"""The GEMM driver as a cached object file, linked into every generated C module that uses it.

gc_gemm.h's shared driver (packing, micro-kernels, the paths for few rows / columns / small K,
float and double) does not depend on the graph: only the epilogues do.  Compiled into each
module it was most of the compile time (the 784-256-256-10 training step: 2.3-3.0 s, then
about 0.6 s without it).  So ``kernels/gc_gemm_core.c`` is compiled once per compiler, flags and
kernel sources into ``<cache>/kernels/<key>.o`` (same locking and atomic writes as the modules),
and modules that include gc_gemm.h are compiled with ``GC_GEMM_CORE_EXTERN`` and linked with it.
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from .. import __version__
from .cache import cache_key, get_or_build
from .kernel_files import kernels_dir

CORE_SOURCE = "gc_gemm_core.c"
EXTERN_FLAG = "-DGC_GEMM_CORE_EXTERN"
_SYMBOLS = (b"gc__gemm_run_f32", b"gc__gemm_run_f64")


def uses_gemm(source: str) -> bool:
    return '#include "gc_gemm.h"' in source


def core_key(cc_version: str, flags: list[str]) -> str:
    d = kernels_dir()
    return cache_key("gemm-core", (d / CORE_SOURCE).read_text(), (d / "gc_gemm.h").read_text(),
                     " ".join(flags), cc_version, __version__)


def check_object(p: Path) -> Path:
    """Raise OSError unless ``p`` is a whole 64-bit ELF relocatable object defining the drivers
    (a truncated or foreign file would make every link fail)."""
    data = p.read_bytes()
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2:
        raise OSError(f"corrupt cache entry {p}: not a 64-bit ELF object")
    order = "<" if data[5] == 1 else ">"
    (e_type,) = struct.unpack_from(order + "H", data, 0x10)
    (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
    if e_type != 1 or shoff + shentsize * shnum > len(data):
        raise OSError(f"corrupt cache entry {p}: truncated or not a relocatable object")
    for sym in _SYMBOLS:
        if b"\0" + sym + b"\0" not in data:
            raise OSError(f"corrupt cache entry {p}: no {sym.decode()}")
    return p


def core_object(cc: str, cc_version: str, flags: list[str], compile_error) -> Path:
    """Path of the compiled driver for this compiler and these flags, built on first use.
    ``compile_error(message)`` makes the exception raised when the compiler fails."""
    key = core_key(cc_version, flags)

    def build(tmp: Path) -> None:
        src = kernels_dir() / CORE_SOURCE
        cmd = [cc, *flags, "-fPIC", "-c", f"-I{kernels_dir()}", str(src), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            first = "\n".join(proc.stderr.splitlines()[:20])
            raise compile_error(f"C compilation of the GEMM driver {src} failed:\n{first}")

    path, _ = get_or_build(key, ".o", build, check_object)
    return path


def discard(path: Path) -> None:
    """Remove a core object that failed to link, so the next build makes it again."""
    path.unlink(missing_ok=True)
