"""The on-disk compile cache: compiled modules keyed by sha256 of everything that affects them.

Layout: ``$GRAPHC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/graphc`` or ``~/.cache/graphc``)
``/kernels/<key>.so`` with the source kept beside it as ``<key>.c``; the GEMM driver objects
every module links (runtime/gemm_core.py) in ``core_dir()``.  Writers build into a
temporary file and ``os.replace`` it into place (atomic), under a per-key ``filelock`` lock,
so a second process compiling the same graph waits and then reuses the first's result.  Locks
are flock-based: a crashed holder releases its lock, so stale locks never block.  An entry that
fails to load is deleted and rebuilt.  The kernels directory is capped
(``GRAPHC_CACHE_MAX_BYTES``, runtime/cache_limit.py): a load touches the module's mtime, and
writing an entry prunes the least recently used ones beyond the cap.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable


from . import cache_limit


def _user_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "graphc"


def cache_root() -> Path:
    env = os.environ.get("GRAPHC_CACHE_DIR")
    return Path(env) if env else _user_cache_root()


def core_dir() -> Path:
    """Where the compiled GEMM driver objects are (runtime/gemm_core.py): ``GRAPHC_CORE_DIR``,
    else ``~/.cache/graphc/core`` whatever ``GRAPHC_CACHE_DIR`` says (they belong to the
    installed library and its compiler, not to graphs); the kernels directory when that
    cannot be written."""
    env = os.environ.get("GRAPHC_CORE_DIR")
    d = Path(env) if env else _user_cache_root() / "core"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK | os.X_OK):
            return d
    except OSError:
        pass
    return kernel_cache_dir()


_fallback_dir: Path | None = None


def kernel_cache_dir() -> Path:
    """The kernels directory, created on demand.  When the cache directory cannot be used (not
    a directory, no permission) compiling still works: a per-process temporary directory is
    used instead, with a warning naming the problem."""
    global _fallback_dir
    d = cache_root() / "kernels"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not os.access(d, os.W_OK | os.X_OK):
            raise PermissionError(f"no write permission for {d}")
        return d
    except OSError as e:
        if _fallback_dir is None:
            _fallback_dir = Path(tempfile.mkdtemp(prefix="graphc-cache-"))
            atexit.register(shutil.rmtree, _fallback_dir, ignore_errors=True)
            warnings.warn(f"graphc: cannot use the compile cache at {d} ({e}); compiled modules "
                          f"go to {_fallback_dir} for this process (set GRAPHC_CACHE_DIR to a "
                          f"writable directory)", RuntimeWarning, stacklevel=2)
        return _fallback_dir


def cache_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def touch(path: Path) -> None:
    """Mark a cache entry used now (its mtime orders the pruning, least recently used first)."""
    try:
        os.utime(path)
    except OSError:  # pruned meanwhile, or a read-only cache: the entry simply ages
        pass


def get_or_build(key: str, suffix: str, build: Callable[[Path], None],
                 validate: Callable[[Path], object], timeout: float = 600,
                 directory: Path | None = None) -> tuple[Path, object]:
    """Return (path, validate(path)) of cache entry ``key`` (in ``directory``, default the
    kernels directory), building it with ``build(tmp_path)`` when missing or when the existing
    entry fails ``validate`` (corrupt).  In the kernels directory (the capped one) a hit
    touches the entry and a build prunes the others down to ``GRAPHC_CACHE_MAX_BYTES``; other
    directories' files are left as they are (the GEMM core's mtime says when it was built)."""
    capped = directory is None
    limit = cache_limit.max_bytes() if capped else None  # a bad value: before any work
    d = kernel_cache_dir() if capped else directory
    used = touch if capped else (lambda p: None)
    path = d / f"{key}{suffix}"
    if path.exists():
        try:
            value = validate(path)
            used(path)
            return path, value
        except Exception:
            pass  # corrupt, incompatible, or pruned meanwhile: rebuild under the lock
    from filelock import FileLock  # only to build: a cache hit (warm load) never imports it
    with FileLock(str(d / f"{key}.lock"), timeout=timeout):
        if path.exists():  # another process may have built it meanwhile
            try:
                value = validate(path)
                used(path)
                return path, value
            except Exception:
                path.unlink(missing_ok=True)
        tmp = d / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp{suffix}"
        try:
            build(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        value = validate(path)  # under the lock: another process's prune cannot remove it first
    if limit is not None:
        try:
            cache_limit.prune(d, limit, keep={key})
        except OSError as e:  # the module is built and loaded: a failed cleanup is not fatal
            warnings.warn(f"graphc: pruning the compile cache {d} failed ({e})", RuntimeWarning,
                          stacklevel=2)
    return path, value


def list_entries() -> list[dict]:
    d = cache_root() / "kernels"
    if not d.exists():
        return []
    out = []
    for p in sorted(d.glob("*.so")):
        st = p.stat()
        out.append({"key": p.stem, "path": str(p), "bytes": st.st_size, "mtime": st.st_mtime})
    return out


def core_objects() -> list[Path]:
    """The compiled GEMM driver objects in ``core_dir()``: the files named by a cache key
    (GRAPHC_CORE_DIR may point at a directory holding other object files)."""
    return sorted(p for p in core_dir().glob("*.o") if re.fullmatch(r"[0-9a-f]{64}", p.stem))


def kernels_usage() -> int:
    """Bytes of the compiled modules, their sources and index files (what the cap counts)."""
    return cache_limit.usage(cache_root() / "kernels")


def prune(max_bytes: int | None = None) -> cache_limit.PruneReport:
    """Prune the kernels directory to ``max_bytes`` (default ``GRAPHC_CACHE_MAX_BYTES``),
    least recently used first; entries another process holds are skipped."""
    limit = cache_limit.max_bytes() if max_bytes is None else max_bytes
    return cache_limit.prune(cache_root() / "kernels", limit)


def clear(core: bool = False) -> int:
    """Delete every cache entry, and with ``core`` the compiled GEMM driver objects too;
    returns how many modules were removed."""
    d = cache_root() / "kernels"
    n = len(list(d.glob("*.so"))) if d.exists() else 0
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
    if core:
        for p in core_objects():
            p.unlink(missing_ok=True)
    return n
