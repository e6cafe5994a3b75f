"""The GEMM driver as a cached object file, linked into every generated C module that uses it.

gc_gemm.h's shared driver (packing, micro-kernels, the paths for few rows / columns / small K,
float and double) does not depend on the graph: only the epilogues do.  Compiled into each
module it was most of the compile time (the 784-256-256-10 training step: 2.3-3.0 s, then
about 0.6 s without it).  So ``kernels/gc_gemm_core.c`` is compiled once per compiler, flags and
kernel sources (and CPU, with -march=native: ``host_cpu``), one object per element type, into
``cache.core_dir()`` (same locking, atomic writes and validation as the modules), and modules
that include gc_gemm.h are compiled with ``GC_GEMM_CORE_EXTERN`` and linked with it.  The core
is part of the installed library, not of any graph: it lives outside ``GRAPHC_CACHE_DIR`` (by
default ``~/.cache/graphc/core``), so pointing that at a fresh directory recompiles graphs, not
the GEMM driver.
"""
from __future__ import annotations

import functools
import platform
import re
import struct
import subprocess
from pathlib import Path

from .. import __version__
from .cache import cache_key, core_dir, get_or_build
from .kernel_files import kernel_file, kernels_dir

CORE_SOURCE = "gc_gemm_core.c"
EXTERN_FLAG = "-DGC_GEMM_CORE_EXTERN"
_ELEMENT_BITS = {"float": 32, "double": 64}
# after the user's flags: a function left undeclared by a -std= mode is an error (see
# cpu.LINK_FLAGS); machine code even under -flto (a slim LTO object holds GIMPLE: no driver
# symbol for check_object, and only the same compiler's LTO plugin can link it)
CORE_FLAGS = ["-fPIC", "-c", "-Werror=implicit-function-declaration", "-fno-lto"]


def element_bits(source: str) -> list[int]:
    """The element types (32 / 64 bits) of the GEMMs a module's source instantiates."""
    types = set(re.findall(r"^#define GC_GEMM_REAL (\w+)$", source, flags=re.M))
    return sorted(_ELEMENT_BITS[t] for t in types)


@functools.lru_cache(maxsize=None)
def host_cpu() -> str:
    """This machine's CPU (vendor, model, feature flags from /proc/cpuinfo, else platform's
    description), part of the key of a core built for it (-march=native): the core directory
    is shared by every GRAPHC_CACHE_DIR, and a home directory by machines with other CPUs."""
    keep = ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part")
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    lines = [ln for ln in text.splitlines() if ln.split(":")[0].strip() in keep]
    return "\n".join(dict.fromkeys(lines)) or f"{platform.machine()} {platform.processor()}"


def core_key(cc_version: str, flags: list[str], bits: int) -> str:
    native = host_cpu() if any(f.endswith("=native") for f in flags) else ""
    return cache_key("gemm-core", str(bits), kernel_file(CORE_SOURCE).read_text(),
                     kernel_file("gc_gemm.h").read_text(), " ".join(flags + CORE_FLAGS),
                     cc_version, __version__, native)


def check_object(p: Path, bits: int) -> Path:
    """Raise OSError unless ``p`` is a whole 64-bit ELF relocatable object naming the driver
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
    sym = f"gc__gemm_run_f{bits}".encode()
    if b"\0" + sym + b"\0" not in data:
        raise OSError(f"corrupt cache entry {p}: no {sym.decode()}")
    return p


def core_object(cc: str, cc_version: str, flags: list[str], bits: int, compile_error) -> Path:
    """Path of the compiled driver for ``bits``-bit elements, this compiler and these flags,
    built on first use into ``cache.core_dir()``.  ``compile_error(message)`` makes the
    exception raised when the compiler fails."""
    key = core_key(cc_version, flags, bits)

    def build(tmp: Path) -> None:
        src = kernel_file(CORE_SOURCE)
        cmd = [cc, *flags, *CORE_FLAGS, f"-DGC_GEMM_CORE_ONLY={bits}", f"-I{kernels_dir()}",
               str(src), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            first = "\n".join(proc.stderr.splitlines()[:20])
            raise compile_error(f"C compilation of the GEMM driver {src} failed:\n{first}")

    path, _ = get_or_build(key, ".o", build, lambda p: check_object(p, bits),
                           directory=core_dir())
    return path


def cores_built(cc_version: str, flags: list[str], source: str) -> bool:
    """Whether every core object ``source`` needs is in the cache already (a cheap look: the
    objects are validated when ``objects_for_source`` fetches them)."""
    return all((core_dir() / f"{core_key(cc_version, flags, bits)}.o").exists()
               for bits in element_bits(source))


def objects_for_source(cc: str, cc_version: str, flags: list[str], source: str,
                       compile_error) -> list[Path]:
    """The core objects a module's source needs (none without a GEMM)."""
    return [core_object(cc, cc_version, flags, bits, compile_error)
            for bits in element_bits(source)]


def discard(paths: list[Path]) -> None:
    """Remove core objects that failed to link, so the next build makes them again."""
    for p in paths:
        p.unlink(missing_ok=True)
