"""How many threads the compiled CPU code uses, and fork safety.

Every module the C backend loads exports ``gc_set_threads(n)`` and ``gc_get_threads()``
(kernels/gc_runtime.h); its
parallel regions use that many threads (0: OpenMP's default, ``OMP_NUM_THREADS`` or the
cores).  This module remembers the setting and applies it to every module, loaded before or
after the call.

Fork: GNU OpenMP's thread pool does not survive ``fork()``.  A child process forked after
graphc code ran a parallel region would wait forever in its first parallel region, so in such a
child every module is set to one thread (``multiprocessing``'s default start method on Linux is
fork).  Use the "spawn" or "forkserver" start method for multi-threaded steps in workers.
"""
from __future__ import annotations

import os
import threading
import warnings

_lock = threading.Lock()
_modules: list = []       # libraries exporting gc_set_threads (never unloaded: -z nodelete)
_requested = 0            # 0: OpenMP's default
_forked_after_openmp = False
MAX_THREADS = 1024        # GC_MAX_THREADS of kernels/gc_runtime.h: the most a region uses


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _effective() -> int:
    return 1 if _forked_after_openmp else min(_requested, MAX_THREADS)


def register(lib) -> None:
    """A freshly loaded module: give it the current thread setting.  (runtime/cpu.py loads
    each module file once per FFI, so a graph compiled again does not add an entry.)"""
    with _lock:
        if not any(m is lib for m in _modules):
            _modules.append(lib)
        lib.gc_set_threads(_effective())


def set_num_threads(n: int) -> None:
    """Threads for every parallel region of compiled CPU code (like ``torch.set_num_threads``);
    ``0`` restores OpenMP's default; more than ``MAX_THREADS`` uses that many.  In a process
    forked after graphc ran OpenMP code it stays 1, with a warning (see the module docstring)."""
    global _requested
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"set_num_threads: expected an int >= 0, got {n!r}")
    with _lock:
        _requested = n
        if _forked_after_openmp and n != 1:
            warnings.warn("graphc runs single-threaded in a process forked after it used "
                          "OpenMP (the thread pool does not survive fork); start workers with "
                          "multiprocessing's 'spawn' or 'forkserver' method", RuntimeWarning,
                          stacklevel=2)
        for lib in _modules:
            lib.gc_set_threads(_effective())


def get_num_threads() -> int:
    """Threads a parallel region of compiled CPU code uses now (asked from a loaded module when
    there is one: OpenMP's own answer)."""
    with _lock:
        if _modules:
            return int(_modules[0].gc_get_threads())
        eff = _effective()
    return eff if eff > 0 else _default_threads()


def _after_fork_in_child() -> None:
    global _forked_after_openmp, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _modules:  # OpenMP code ran (or may have): its pool is gone in this process
        _forked_after_openmp = True
        for lib in _modules:
            lib.gc_set_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
