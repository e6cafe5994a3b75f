"""The C backend's runtime: build the generated C with gcc, load it with cffi, call it.

One compiled module per (program, concrete input shapes): the first call with new shapes
lowers, renders and compiles (or loads from the disk cache); every call then is one C call
``gc_step(slots, arena)`` with the numpy buffers passed without copies.  Parameters are updated
in place by the generated code.

Compiler: ``$CC`` or gcc; flags ``-O3 -march=native -fopenmp`` plus ``-fPIC -shared``, all
replaceable with ``GRAPHC_CFLAGS``.  The module is loaded with ``cffi.FFI().dlopen`` (ABI mode:
no Python extension build step, so a warm load is a dlopen).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import __version__
from ..codegen.c import render_c
from ..errors import BackendUnavailable
from ..lower import Lowered, label_error, lower
from ..program import Program
from .cache import cache_key, get_or_build, kernel_cache_dir, touch
from .kernel_files import C_FILES, kernels_dir, require
from .specializing import ShapeSpecializingExecutable, check_dtypes
from . import gemm_core, threads

DEFAULT_FLAGS = "-O3 -march=native -fopenmp -std=gnu11 -fno-math-errno"
# -z nodelete: never unmap a module (nor libgomp with it) while OpenMP worker threads may still
# run its code, e.g. when the interpreter exits and cffi drops the library
# -z defs: a module referring to a symbol nothing defines (a damaged GEMM core object) fails to
# link, instead of failing when loaded or called
# -Werror=implicit-function-declaration: a function some -std= mode leaves undeclared (C11's
# aligned_alloc under -std=c99) is a compile error, not an int-returning call that crashes
LINK_FLAGS = ["-fPIC", "-shared", "-Wl,-z,nodelete", "-Wl,-z,defs",
              "-Werror=implicit-function-declaration"]


@functools.lru_cache(maxsize=None)
def _libmvec_flags() -> list[str]:
    """Where glibc's vector math library is (x86-64 Linux): compile with GC_LIBMVEC (gc_runtime.h
    lets vectorized loops call its functions) and link it; ``GRAPHC_NO_LIBMVEC=1`` opts out."""
    import ctypes.util
    import platform
    if os.environ.get("GRAPHC_NO_LIBMVEC") or platform.machine() not in ("x86_64", "AMD64") \
            or not sys.platform.startswith("linux") or ctypes.util.find_library("mvec") is None:
        return []
    return ["-DGC_LIBMVEC"]


def compiler() -> str:
    cc = os.environ.get("CC", "gcc")
    path = shutil.which(cc)
    if path is None:
        raise BackendUnavailable(
            f"the C backend needs a C compiler, and {cc!r} was not found on PATH; install gcc "
            f"(Debian/Ubuntu: apt-get install gcc, macOS: xcode-select --install) or set CC")
    return path


def _asan_runtime_loaded() -> bool:
    import ctypes
    return hasattr(ctypes.CDLL(None), "__asan_init")


def flags() -> list[str]:
    out = shlex.split(os.environ.get("GRAPHC_CFLAGS", DEFAULT_FLAGS)) + _libmvec_flags()
    if any(f.startswith("-fsanitize=") and "address" in f.split("=", 1)[1].split(",")
           for f in out) and not _asan_runtime_loaded():
        # loading such a module would end the process ("ASan runtime does not come first")
        raise ValueError("GRAPHC_CFLAGS has -fsanitize=address, whose runtime must be loaded "
                         "before the interpreter starts: run with LD_PRELOAD=$(gcc "
                         "-print-file-name=libasan.so) (and ASAN_OPTIONS=detect_leaks=0)")
    if os.environ.get("GRAPHC_PROFILE"):
        out.append("-DGC_PROFILE")  # per-kernel timers: see CExecutable.profile()
    return out


@functools.lru_cache(maxsize=None)
def compiler_version(cc: str) -> str:
    """Identifies the compiler for the cache key: the resolved binary and its size and mtime
    (changes whenever the compiler is upgraded; no subprocess on the warm path)."""
    real = os.path.realpath(cc)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


class CompileError(RuntimeError):
    """The C compiler rejected generated code (a graphc bug): names the kept source file."""


# the entry points every generated module exports (codegen/c.py renders them)
CDEF = ("int gc_step(void **slots, char *arena); double *gc_profile(int *n);\n"
        "void gc_set_threads(int n); int gc_get_threads(void);")


@functools.lru_cache(maxsize=None)
def _ffi():
    """The FFI the modules are dlopen'ed with.  ``_gc_ffi`` is CDEF pre-parsed by cffi's
    out-of-line ABI mode (``python -m graphc.runtime.cpu --emit-ffi`` writes it): parsing CDEF
    imports pycparser, about 20 ms of every process's first C call.  Parsed here when that
    module does not load (a cffi whose backend refuses its format)."""
    try:
        from ._gc_ffi import ffi
        return ffi
    except Exception:  # any failure of the pre-parsed form: parse the declarations instead
        return _parsed_ffi()


def _parsed_ffi():
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    return ffi


def emit_ffi_module(path) -> None:
    """Write CDEF pre-parsed (cffi's out-of-line ABI mode) as the module ``_gc_ffi``."""
    import cffi
    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source("graphc.runtime._gc_ffi", None)
    builder.emit_python_code(str(path))


@functools.lru_cache(maxsize=None)
def _headers_digest() -> str:
    d = kernels_dir()
    return cache_key(*[p.read_text() for p in sorted([*d.glob("*.h"), *d.glob("*.c")])])


def module_key(source: str) -> str:
    cc = compiler()
    # comments (node names, source lines) do not change the machine code: keep them out of the
    # key so the same graph built elsewhere reuses the module
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return cache_key(code, " ".join(flags() + LINK_FLAGS), compiler_version(cc), __version__,
                     _headers_digest())


@functools.lru_cache(maxsize=None)
def _codegen_digest() -> str:
    """Hash of the code that turns a lowered program into C (a renderer change must not reuse
    an index entry written by an older renderer)."""
    here = Path(__file__).resolve().parent.parent
    files = [here / "fusion.py", *sorted((here / "lower").glob("*.py")),
             *sorted((here / "codegen").glob("*.py"))]
    return cache_key(*[f.read_text() for f in files])


def _attr_key(v) -> str:
    """Exact text of a computed node's attribute for the fingerprint.  Every attribute of a
    kernel's node may reach the source (fill_like's value is a literal in the C), so none is
    left out, and none is abbreviated: str() rounds SymPy Floats to 15 digits and elides the
    middle of large arrays.  (Parameter and constant values are leaves: they reach the module
    through slots, not through kernels' attributes.)"""
    import sympy as sp
    if isinstance(v, sp.Basic):
        return sp.srepr(v)
    if isinstance(v, np.ndarray):
        return f"array:{v.dtype}:{v.shape}:{hashlib.sha256(v.tobytes()).hexdigest()}"
    return f"{type(v).__name__}:{v!r}"


def lowered_fingerprint(low: Lowered) -> str:
    """A cheap structural key of a lowered program: everything the rendered source depends on
    except comments.  It indexes the cache so a warm load skips rendering."""
    parts = [_codegen_digest(), " ".join(flags() + LINK_FLAGS), __version__,
             compiler_version(compiler()), _headers_digest()]
    for s in low.slots:
        parts.append(f"{s.kind}:{tuple(s.node.shape)}:{s.node.dtype}")
    for k in low.kernels:
        n = k.node
        attrs = sorted((a, _attr_key(v)) for a, v in n.attrs.items())
        parts.append(repr((k.kind, k.name, tuple(n.shape), n.dtype, k.dst, tuple(k.srcs),
                           [(tuple(i.shape), i.dtype) for i in n.inputs], attrs)))
        group = [n.id] + [m.node.id for m in k.members]
        for m in k.members:  # updates folded into the kernel: their own expressions and buffers
            mattrs = sorted((a, _attr_key(v)) for a, v in m.node.attrs.items())
            parts.append(repr(("member", m.node.op, tuple(m.node.shape), m.node.dtype, m.dst, tuple(m.srcs),
                               [(tuple(i.shape), i.dtype,
                                 group.index(i.id) if i.id in group else None)
                                for i in m.node.inputs], mattrs)))
        if k.prologue is not None:  # the reduction's input computed per element: its expression
            e = k.prologue.node
            eattrs = sorted((a, _attr_key(v)) for a, v in e.attrs.items())
            parts.append(repr(("prologue", e.op, tuple(e.shape), e.dtype, tuple(k.prologue.srcs),
                               [(tuple(i.shape), i.dtype) for i in e.inputs], eattrs)))
        if k.group_max is not None:  # a maxout of the GEMM's output: its buffer and groups
            g = k.group_max
            parts.append(repr(("group_max", tuple(g.node.shape), g.node.dtype, g.dst, g.pieces)))
    parts.append(str(low.arena_bytes))
    return cache_key(*parts)


def build_module(source: str, ffi=None):
    """Compile ``source`` (or fetch it from the cache) and return (the library loaded through
    ``ffi``, default the step's ``gc_step`` declarations, its path)."""
    cc = compiler()
    fl = flags()
    require(C_FILES)  # BackendUnavailable naming a missing one (and GRAPHC_KERNELS_DIR)
    key = module_key(source)

    def build(tmp: Path) -> None:
        src = tmp.with_suffix(".c")
        try:
            _build(tmp, src)
        finally:  # interrupted (Ctrl-C in gcc), a GEMM core that fails to build, no gcc...:
            src.unlink(missing_ok=True)  # the temporary source is not left in the cache

    def _build(tmp: Path, src: Path) -> None:
        src.write_text(source)
        kept = tmp.parent / f"{key}.c"
        libs = ["-lmvec"] if "-DGC_LIBMVEC" in fl else []  # after the source: --as-needed
        libs.append("-lm")  # -z defs: every library the module calls into is named

        def compile_once():
            """(gcc's result, the GEMM core objects linked in)."""
            cores = gemm_core.objects_for_source(cc, compiler_version(cc), fl, source,
                                                 CompileError)
            defines = [gemm_core.EXTERN_FLAG] if cores else []
            cmd = [cc, *fl, *defines, *LINK_FLAGS, f"-I{kernels_dir()}", str(src),
                   *map(str, cores), *libs, "-o", str(tmp)]
            return subprocess.run(cmd, capture_output=True, text=True), cores

        def compile_beside_core():
            """compile_once for a module that needs a GEMM core object not built yet (the
            first module on this machine, compiler and flags): the core (1.2-1.6 s) builds on
            another thread while gcc compiles the module to an object, then both are linked."""
            obj = tmp.with_suffix(".o")
            try:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    pending = pool.submit(gemm_core.objects_for_source, cc, compiler_version(cc),
                                          fl, source, CompileError)
                    proc = subprocess.run(
                        [cc, *fl, gemm_core.EXTERN_FLAG, "-fPIC", "-c",
                         "-Werror=implicit-function-declaration", f"-I{kernels_dir()}", str(src),
                         "-o", str(obj)], capture_output=True, text=True)
                    cores = pending.result()
                if proc.returncode == 0:
                    proc = subprocess.run([cc, *fl, *LINK_FLAGS, str(obj), *map(str, cores),
                                           *libs, "-o", str(tmp)], capture_output=True, text=True)
                return proc, cores
            finally:
                obj.unlink(missing_ok=True)

        if gemm_core.element_bits(source) and not gemm_core.cores_built(compiler_version(cc), fl,
                                                                        source):
            proc, cores = compile_beside_core()
        else:
            proc, cores = compile_once()
        if proc.returncode != 0 and cores and (
                "gc__gemm_run" in proc.stderr or any(c.name in proc.stderr for c in cores)):
            # a core object that passed the checks but does not link (damaged in the middle):
            # build it again, once.  Not for the module's own errors: the objects are shared
            # (other processes link them), and rebuilding them would not help
            gemm_core.discard(cores)
            proc, cores = compile_once()
        if proc.returncode != 0:
            shutil.copyfile(src, kept)
            src.unlink(missing_ok=True)
            first = "\n".join(proc.stderr.splitlines()[:20])
            raise CompileError(f"C compilation failed (source kept at {kept}):\n{first}")
        os.replace(src, kept)
        try:  # flags such as -c, -E or -fsyntax-only "succeed" without building a module
            check_elf(tmp)
        except OSError as e:
            raise CompileError(f"the C compiler gave no loadable module ({e}); compiler flags: "
                               f"{' '.join(fl)} (GRAPHC_CFLAGS replaces the defaults "
                               f"{DEFAULT_FLAGS!r}); source kept at {kept}") from None
        seal(tmp, key)

    path, lib = get_or_build(key, ".so", build, lambda p: _load(p, ffi))
    return lib, path


_REQUIRED_SYMBOLS = (b"gc_set_threads", b"gc_get_threads")
_SEAL = b"\0graphc-module-seal\0"
_SEAL_BYTES = len(_SEAL) + 64 + 64  # the marker, the cache key, the body's sha256 (hex)


def seal(p: Path, key: str) -> None:
    """Append the cache key and the sha256 of the built module to its file (the dynamic loader
    ignores bytes after the sections): loading checks both, so an entry damaged anywhere or
    replaced by the module of another graph is rebuilt, never run."""
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    with open(p, "ab") as fh:
        fh.write(_SEAL + key.encode() + digest.encode())


def check_elf(p: Path, data: bytes | None = None) -> None:
    """Raise OSError unless ``p`` (or ``data``, its contents) is a whole 64-bit ELF shared
    object exporting graphc's module functions."""
    data = p.read_bytes() if data is None else data
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2:  # ELF64 only (like the build)
        raise OSError(f"{p}: not a 64-bit ELF file")
    order = "<" if data[5] == 1 else ">"
    import struct
    if struct.unpack_from(order + "H", data, 0x10)[0] != 3:  # ET_DYN
        raise OSError(f"{p}: not a shared object")
    phoff, shoff = struct.unpack_from(order + "QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", data, 0x36)
    if phoff + phentsize * phnum > len(data) or shoff + shentsize * shnum > len(data):
        raise OSError(f"{p}: truncated ({len(data)} bytes)")
    for i in range(phnum):  # every segment's file bytes must be present
        _, _, offset, _, _, filesz = struct.unpack_from(order + "IIQQQQ", data, phoff + i * phentsize)
        if offset + filesz > len(data):
            raise OSError(f"{p}: truncated ({len(data)} bytes)")
    for sym in _REQUIRED_SYMBOLS:
        if b"\0" + sym + b"\0" not in data:
            raise OSError(f"{p}: not a graphc module (no {sym.decode()})")


def check_module_file(p: Path) -> None:
    """Raise OSError unless ``p`` is the whole module graphc built for cache key ``p.stem``.
    Checked before dlopen: a truncated file maps fine but kills the process with SIGBUS when
    the loader touches the missing pages, damaged code kills it with SIGILL or SIGSEGV, another
    graph's module computes the wrong thing, and an object dlopen'ed once stays loaded under
    its path (a rebuilt file at the same path would not be seen)."""
    data = p.read_bytes()
    if sys.platform.startswith(("darwin", "win")):
        return
    body, trailer = data[:-_SEAL_BYTES], data[-_SEAL_BYTES:]
    if len(data) < _SEAL_BYTES or not trailer.startswith(_SEAL):
        raise OSError(f"corrupt cache entry {p}: no graphc seal (truncated, or not built by "
                      f"this version of graphc)")
    key = trailer[len(_SEAL):len(_SEAL) + 64].decode("ascii", "replace")
    if key != p.stem:
        raise OSError(f"cache entry {p} holds the module of another graph (built for key {key})")
    if hashlib.sha256(body).hexdigest().encode() != trailer[-64:]:
        raise OSError(f"corrupt cache entry {p}: its contents do not match their sha256")
    try:
        check_elf(p, body)
    except OSError as e:
        raise OSError(f"corrupt cache entry {e}") from None


# (ffi, path) -> the library loaded from that file through that ffi.  cffi's FFI.dlopen appends
# every library it opens to the FFI (ffi._libraries, never released), so loading a module
# again at each compile of the same graph grew the process by ~7 KB a compile; the modules
# are never unloaded (-z nodelete) and dlopen of a loaded path returns the same code anyway
_loaded: dict = {}
_loaded_lock = threading.Lock()


def _load(p: Path, ffi=None):
    check_module_file(p)  # a truncated, overwritten or foreign entry is rebuilt, not loaded
    ffi = ffi or _ffi()
    with _loaded_lock:
        lib = _loaded.get((ffi, str(p)))
        if lib is not None:
            return lib
        lib = _loaded[(ffi, str(p))] = ffi.dlopen(str(p))
    threads.register(lib)  # every module declares gc_set_threads (gc_runtime.h)
    return lib


def load_lowered(low: Lowered):
    """(library, path, source or None): a warm load goes through the fingerprint index and
    never renders; otherwise render, compile, and record the index entry."""
    fingerprint = lowered_fingerprint(low)
    index = kernel_cache_dir() / f"{fingerprint}.idx"
    try:
        # "<module key> <fingerprint>": an index file copied over another graph's (or damaged)
        # names no module, rather than the module of that other graph
        entry = index.read_text().split()
        if len(entry) != 2 or entry[1] != fingerprint or not re.fullmatch(r"[0-9a-f]{64}",
                                                                          entry[0]):
            raise ValueError(f"bad index entry {index}")
        key = entry[0]
        path = kernel_cache_dir() / f"{key}.so"
        lib = _load(path)
        touch(path)  # used: the least recently used entries are pruned first
        return lib, path, None
    except (OSError, ValueError):
        pass
    source = render_c(low)
    lib, path = build_module(source)
    # unique per thread too: threads of one process compiling the same graph race here
    tmp = index.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(f"{path.stem} {fingerprint}")
    os.replace(tmp, index)
    return lib, path, source


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


ALIGN = 64  # cache-line alignment of parameters: GEMM rows read in place split lines otherwise


def aligned_copy(arr: np.ndarray, dtype) -> np.ndarray:
    """A C-contiguous, writeable copy of ``arr`` as ``dtype`` starting on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = max(int(np.prod(arr.shape)), 1) * dtype.itemsize  # a zero-size array too
    buf = np.empty(nbytes + ALIGN, dtype=np.uint8)
    off = (-_address(buf)) % ALIGN
    out = buf[off:off + nbytes].view(dtype)[:int(np.prod(arr.shape))].reshape(arr.shape)
    out[...] = arr
    return out


class _Specialization:
    """One compiled module for one set of concrete input shapes."""

    def __init__(self, program: Program, shapes, pipeline=None, lock=None):
        self.lowered: Lowered = lower(program, shapes, pipeline=pipeline)
        self.lib, self.path, self._source = load_lowered(self.lowered)
        self.ffi = ffi = _ffi()
        self.arena = np.zeros(max(self.lowered.arena_bytes, 64) + 64, dtype=np.uint8)
        self.arena_ptr = ffi.cast("char*", _address(self.arena) + (-_address(self.arena)) % 64)
        # the slot table C reads; filled with ffi.from_buffer (the cheapest way to get an
        # array's address into C from Python)
        self.slots = ffi.new("void*[]", max(len(self.lowered.slots), 1))
        self._const_keep = []
        for i, s in enumerate(self.lowered.slots):
            if s.kind == "const":
                arr = aligned_copy(s.node.attrs["value"], s.node.dtype)
                self._const_keep.append(arr)
                self.slots[i] = ffi.from_buffer(arr)
        self.params = [(i, s.node, s.node.attrs["store"]) for i, s in
                       enumerate(self.lowered.slots) if s.kind == "param"]
        self._param_arrays: list = [None] * len(self.params)
        # one arena and slot table per module: calls from several threads take turns (all the
        # specializations of a program with updates share ``lock``: see CExecutable)
        self._lock = lock or threading.Lock()
        self.outputs = [(i, node.shape, np.dtype(node.dtype)) for i, node in self.lowered.outputs]

    @property
    def source(self) -> str:
        if self._source is None:  # warm load: render (the kept .c may come from another graph
            self._source = render_c(self.lowered)  # of the same structure, with other names)
        return self._source

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return self._run(feeds)

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        slots, from_buffer = self.slots, self.ffi.from_buffer
        # labels are range-checked by the cross-entropy kernels (status below), fed or computed
        for i, arr in enumerate(feeds):
            slots[i] = from_buffer(arr)
        cached = self._param_arrays
        for k, (i, p, store) in enumerate(self.params):
            arr = store.array
            if arr is not cached[k]:  # a new array (p.value = ... or another backend wrote it)
                if not (arr.flags.c_contiguous and arr.flags.writeable) \
                        or arr.dtype != p.dtype or _address(arr) % ALIGN:
                    arr = store.array = aligned_copy(arr, p.dtype)
                slots[i] = from_buffer(arr)
                cached[k] = arr
        outs = []
        for i, shape, dtype in self.outputs:
            out = np.empty(shape, dtype=dtype)
            outs.append(out)
            slots[i] = from_buffer(out)
        status = self.lib.gc_step(slots, self.arena_ptr)
        if status:  # a kernel found invalid labels and stopped the step before any update
            raise label_error(self.lowered, status, feeds)
        for _, _, store in self.params:  # updated in place: device copies elsewhere are stale
            store.version += 1
        return outs


class CExecutable(ShapeSpecializingExecutable):
    """``backend="c"``: specializes per concrete input shapes (like ``jax.jit``)."""

    def __init__(self, program: Program):
        compiler()  # fail early, with install advice, when there is no C compiler
        from ..codegen.c_types import CTYPES
        check_dtypes(program, CTYPES, "C")
        super().__init__(program)
        # steps that update parameters in place take turns whatever their input shapes: two
        # specializations running at once both read the old values, and one update was lost
        self._step_lock = threading.Lock() if program.updates else None

    def _specialize(self, shapes) -> _Specialization:
        return _Specialization(self.program, shapes, lock=self._step_lock)

    def profile(self) -> list[tuple[str, float]]:
        """(kernel, seconds) accumulated over all calls of the current specialization; only
        non-zero when compiled with GRAPHC_PROFILE=1."""
        spec = self._current()
        n = spec.ffi.new("int*")
        data = spec.lib.gc_profile(n)
        names = [k.name for k in spec.lowered.kernels]
        return [(names[i] if i < len(names) else f"k{i}", data[i]) for i in range(n[0])]


if __name__ == "__main__":  # python -m graphc.runtime.cpu --emit-ffi: regenerate _gc_ffi.py
    if sys.argv[1:] != ["--emit-ffi"]:
        sys.exit("usage: python -m graphc.runtime.cpu --emit-ffi")
    emit_ffi_module(Path(__file__).with_name("_gc_ffi.py"))
