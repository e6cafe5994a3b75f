"""Compile CUDA kernel text to a cubin without a GPU: NVRTC via ctypes, else nvcc.

libnvrtc is searched in: ``GRAPHC_NVRTC_LIB`` (a file), the site-packages lib
directories of the NVIDIA wheels (``nvidia-cuda-nvrtc-cu12`` puts it in
``nvidia/cuda_nvrtc/lib/libnvrtc.so.12``; CUDA 13 wheels use ``nvidia/cu13/lib``),
``$CUDA_HOME/lib64``, ``$CUDA_PATH/lib64``, ``/usr/local/cuda/lib64``, then the
dynamic loader's cache.  Without NVRTC, ``nvcc -cubin`` is used (``$CUDA_HOME/bin``,
``/usr/local/cuda/bin`` or PATH).

``compile_cubin`` prepends the CUDA dialect prelude (gc_dialect.h text) to the
source, so no include paths are needed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

from .gpu_common import BackendUnavailable, program_source

__all__ = [
    "NVRTCError",
    "compile_cubin",
    "nvrtc_available",
    "nvcc_path",
    "cubin_compiler_available",
    "find_libnvrtc",
    "nvrtc_version",
]

ELF_MAGIC = b"\x7fELF"


class NVRTCError(RuntimeError):
    """CUDA compilation failed; the message carries the compiler log."""


# --------------------------------------------------------------------- finding
def _site_dirs():
    dirs = []
    for p in list(sys.path) + [getattr(site, "getusersitepackages", lambda: "")()] + list(
        getattr(site, "getsitepackages", lambda: [])()
    ):
        if p and os.path.isdir(p) and p not in dirs:
            dirs.append(p)
    return dirs


def _lib_candidates():
    env = os.environ.get("GRAPHC_NVRTC_LIB")
    if env:
        yield env
    for sp in _site_dirs():
        for sub in ("nvidia/cuda_nvrtc/lib", "nvidia/cu13/lib", "nvidia/cu12/lib"):
            for pat in ("libnvrtc.so*", "nvrtc64_*.dll"):
                hits = sorted(glob.glob(os.path.join(sp, sub, pat)), reverse=True)
                for h in hits:
                    b = os.path.basename(h)
                    if "builtins" in b or ".alt." in b:
                        continue
                    yield h
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    for r in roots:
        if not r:
            continue
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
            for h in sorted(glob.glob(os.path.join(r, sub, "libnvrtc.so*")), reverse=True):
                if "builtins" not in os.path.basename(h):
                    yield h
    found = ctypes.util.find_library("nvrtc")
    if found:
        yield found
    for name in ("libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"):
        yield name


@functools.lru_cache(maxsize=None)
def _load_nvrtc():
    """(CDLL, path) of the first loadable libnvrtc, or (None, reasons)."""
    errors = []
    for cand in _lib_candidates():
        try:
            lib = ctypes.CDLL(cand)
            lib.nvrtcVersion  # noqa: B018 - raises AttributeError if not nvrtc
        except (OSError, AttributeError) as e:
            if os.path.sep in str(cand):
                errors.append(f"{cand}: {e}")
            continue
        _declare(lib)
        return lib, cand
    return None, errors


def _declare(lib):
    c = ctypes
    lib.nvrtcGetErrorString.restype = c.c_char_p
    lib.nvrtcGetErrorString.argtypes = [c.c_int]
    lib.nvrtcVersion.argtypes = [c.POINTER(c.c_int), c.POINTER(c.c_int)]
    lib.nvrtcCreateProgram.argtypes = [
        c.POINTER(c.c_void_p), c.c_char_p, c.c_char_p, c.c_int,
        c.POINTER(c.c_char_p), c.POINTER(c.c_char_p),
    ]
    lib.nvrtcCompileProgram.argtypes = [c.c_void_p, c.c_int, c.POINTER(c.c_char_p)]
    lib.nvrtcGetProgramLogSize.argtypes = [c.c_void_p, c.POINTER(c.c_size_t)]
    lib.nvrtcGetProgramLog.argtypes = [c.c_void_p, c.c_char_p]
    lib.nvrtcGetCUBINSize.argtypes = [c.c_void_p, c.POINTER(c.c_size_t)]
    lib.nvrtcGetCUBIN.argtypes = [c.c_void_p, c.c_char_p]
    lib.nvrtcDestroyProgram.argtypes = [c.POINTER(c.c_void_p)]


def find_libnvrtc() -> str | None:
    """Path (or soname) of the libnvrtc that will be used, or None."""
    lib, where = _load_nvrtc()
    return where if lib is not None else None


def nvrtc_available() -> bool:
    return _load_nvrtc()[0] is not None


def nvrtc_version() -> tuple[int, int] | None:
    lib, _ = _load_nvrtc()
    if lib is None:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


@functools.lru_cache(maxsize=None)
def nvcc_path() -> str | None:
    for r in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if r:
            p = os.path.join(r, "bin", "nvcc")
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    return shutil.which("nvcc")


def cubin_compiler_available() -> bool:
    return nvrtc_available() or nvcc_path() is not None


# ------------------------------------------------------------------- compiling
def _arch_option(arch: str) -> str:
    arch = arch.strip()
    if arch.startswith("compute_"):
        raise ValueError("compile_cubin needs a real architecture (sm_XX), not a virtual one")
    if not arch.startswith("sm_"):
        arch = "sm_" + arch
    return arch


def _compile_nvrtc(lib, text: str, name: str, arch: str, options) -> bytes:
    c = ctypes

    def check(res, what, prog=None):
        if res != 0:
            msg = lib.nvrtcGetErrorString(res).decode(errors="replace")
            log = _log(prog) if prog is not None else ""
            raise NVRTCError(f"NVRTC {what} failed for {name!r} ({msg})" + (f":\n{log}" if log else ""))

    def _log(prog):
        size = c.c_size_t()
        if lib.nvrtcGetProgramLogSize(prog, c.byref(size)) != 0 or size.value <= 1:
            return ""
        buf = c.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        return buf.value.decode(errors="replace")

    prog = c.c_void_p()
    check(lib.nvrtcCreateProgram(c.byref(prog), text.encode(), (name + ".cu").encode(), 0, None, None),
          "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={arch}"] + [str(o) for o in options]
        arr = (c.c_char_p * len(opts))(*[o.encode() for o in opts])
        check(lib.nvrtcCompileProgram(prog, len(opts), arr), "compilation", prog)
        size = c.c_size_t()
        check(lib.nvrtcGetCUBINSize(prog, c.byref(size)), "nvrtcGetCUBINSize", prog)
        if size.value == 0:
            raise NVRTCError(f"NVRTC produced no cubin for {name!r} (arch {arch})")
        buf = c.create_string_buffer(size.value)
        check(lib.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN", prog)
        return buf.raw[: size.value]
    finally:
        lib.nvrtcDestroyProgram(c.byref(prog))


def _compile_nvcc(nvcc: str, text: str, name: str, arch: str, options) -> bytes:
    with tempfile.TemporaryDirectory(prefix="graphc_nvcc_") as tmp:
        src = Path(tmp) / f"{name}.cu"
        out = Path(tmp) / f"{name}.cubin"
        src.write_text(text)
        cmd = [nvcc, "-cubin", f"-arch={arch}", *[str(o) for o in options], "-o", str(out), str(src)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not out.is_file():
            raise NVRTCError(
                f"nvcc failed for {name!r} (exit {p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}"
            )
        return out.read_bytes()


def compile_cubin(source: str, name: str = "graphc_kernels", arch: str = "sm_90", options=(),
                  backend: str | None = None, prelude: bool = True) -> bytes:
    """Compile CUDA kernel text to a cubin (ELF bytes) for ``arch``.

    The CUDA dialect prelude is prepended unless ``prelude=False``.
    ``backend``: None (NVRTC, else nvcc), "nvrtc" or "nvcc".  ``options`` are
    passed through to the compiler (NVRTC and nvcc spellings differ; both
    accept e.g. ``-lineinfo``, ``-DNAME=1``).  Raises NVRTCError (with the
    compiler log) on a compile error and BackendUnavailable when no compiler
    is found.
    """
    arch = _arch_option(arch)
    text = program_source("cuda", source) if prelude else source
    if backend not in (None, "nvrtc", "nvcc"):
        raise ValueError(f"unknown cubin compiler backend {backend!r}")
    if backend in (None, "nvrtc"):
        lib, _ = _load_nvrtc()
        if lib is not None:
            return _compile_nvrtc(lib, text, name, arch, options)
        if backend == "nvrtc":
            raise BackendUnavailable(
                "NVRTC not found (pip install nvidia-cuda-nvrtc-cu12, or set GRAPHC_NVRTC_LIB)"
            )
    nvcc = nvcc_path()
    if nvcc is None:
        raise BackendUnavailable(
            "no CUDA compiler: neither libnvrtc (pip install nvidia-cuda-nvrtc-cu12) nor nvcc found"
        )
    return _compile_nvcc(nvcc, text, name, arch, options)
