"""Review 20 (resources of a long-lived process: a notebook, a hyperparameter search, a
server compiling and dropping many functions): regressions.

* R1 every compile on the C backend appended the freshly loaded library object to the thread
  registry (``runtime/threads._modules``), even when it was the same module file loaded again
  (each compile of the same graph): the list grew by one entry per compile for the life of the
  process (and ``set_num_threads`` walked all of them).  One entry per module file now.
* R2 a C build interrupted before gcc finished (Ctrl-C in a notebook, a GEMM driver that
  fails to build, gcc missing from PATH) left its temporary ``.<key>.<pid>.<tid>.tmp.c`` in the
  kernels directory for ever.
* R3 the OpenCL (and CUDA) adapter memoized every program it built, by text, for the life of
  the process: each distinct graph (other layer sizes) kept its device program even after
  every function using it was dropped.  The memo keeps the most recently used programs only.
* R4 the CUDA device's kernel-function memo held each module it ever looked a kernel up in
  (for the life of the process, whatever R3's memo dropped): bounded too.
* R5 every C specialization dlopen'ed its module through the one shared cffi FFI, which keeps
  each library object it opens for ever (``FFI._libraries``): ~7 KB more per compile of the
  same graph (tracemalloc: +1.0 MB over 150 compiles).  A module file is loaded once per FFI.

Also guarded: compiled functions and their executables (arena, slot table, cffi objects,
device buffers) are collected once dropped; compiling does not leak file descriptors, threads
or temporary files; ``fit``/``predict``/``evaluate`` reuse their compiled functions.
"""
from __future__ import annotations

import gc as pygc
import os
import weakref

import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim

from backends import C, OPENCL, c_available, opencl_available

needs_c = pytest.mark.skipif(not c_available(), reason="no C compiler")


@pytest.fixture(autouse=True)
def _fast_opencl_builds(monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")  # PoCL builds ~3x faster


def _mlp_step(hidden: int, backend: str):
    x = gc.placeholder((None, 6), "float32", name="x")
    w1 = gc.parameter(np.full((6, hidden), 0.1, np.float32), name="W1")
    w2 = gc.parameter(np.full((hidden, 2), 0.1, np.float32), name="W2")
    loss = gc.mean(gc.relu(x @ w1) @ w2)
    g1, g2 = gc.grad(loss, [w1, w2])
    return gc.compile([x], loss, [(w1, w1 - 0.1 * g1), (w2, w2 - 0.1 * g2)], backend=backend)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


X = np.ones((4, 6), np.float32)


@needs_c
def test_r1_recompiling_one_graph_registers_its_module_once():
    from graphc.runtime import threads
    _mlp_step(7, "c")(X)  # (hidden 7: the module the next test builds too, one gcc run less)
    pygc.collect()
    n = len(threads._modules)
    for _ in range(4):
        f = _mlp_step(7, "c")
        f(X)
        del f
    pygc.collect()
    assert len(threads._modules) == n
    gc.set_num_threads(1)  # the registered module still follows the setting
    try:
        assert gc.get_num_threads() == 1
    finally:
        gc.set_num_threads(0)


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
def test_dropped_functions_are_collected_without_leaking_fds_or_threads(backend):
    _mlp_step(7, backend)(X)  # warm: the device, OpenMP's pool, the cache
    pygc.collect()
    fds, tasks = _fds(), _tasks()
    refs = []
    for hidden in (7, 7, 8):
        f = _mlp_step(hidden, backend)
        f(X)
        f(np.ones((3, 6), np.float32))  # a second specialization
        refs.append((weakref.ref(f), weakref.ref(f._exe)))
        del f
    pygc.collect()
    assert [r() for pair in refs for r in pair] == [None] * 6
    assert _fds() <= fds
    assert _tasks() <= tasks


@needs_c
def test_r2_interrupted_build_leaves_no_temporary_source(tmp_path, monkeypatch):
    from graphc.runtime import cpu
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    source = "int gc_step(void **s, char *a) { return 7; } /* review 20 R2 */ int r2_x = 20;"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cpu.subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cpu.build_module(source)
    left = sorted(p.name for p in (tmp_path / "kernels").iterdir())
    assert [n for n in left if ".tmp" in n] == []


@needs_c
def test_r2_failed_and_successful_builds_leave_no_temporary_files(tmp_path, monkeypatch):
    from graphc.runtime import cpu
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    with pytest.raises(cpu.CompileError):
        cpu.build_module("int gc_step(void **s, char *a) { this is not C; }")
    x = gc.placeholder((None, 3), name="x")
    gc.compile([x], gc.tanh(x) * 3.0, backend="c")(np.ones((2, 3), np.float32))
    names = [p.name for p in (tmp_path / "kernels").iterdir()]
    assert [n for n in names if ".tmp" in n] == []
    assert {n.rsplit(".", 1)[1] for n in names} <= {"so", "c", "idx", "lock"}


@pytest.mark.opencl
@pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")
def test_r3_opencl_program_memo_is_bounded(monkeypatch):
    from graphc.runtime import opencl_backend
    adapter = opencl_backend.default_adapter()
    monkeypatch.setattr(adapter, "MODULE_CACHE_SIZE", 1)
    refs = []
    # three distinct programs, each dropped after use (7 and 8 are the programs of the test
    # above: with the memo bounded to 1 they are released all the same, and a cold run builds
    # two OpenCL programs less)
    for hidden in (7, 8, 13):
        f = _mlp_step(hidden, "opencl")
        f(X)
        refs.append(weakref.ref(f._exe._last.module))
        del f
    pygc.collect()
    assert len(adapter._modules) <= 1
    assert refs[0]() is None and refs[1]() is None  # released once no function uses them
    # a live function keeps its program; identical programs still compile once
    f = _mlp_step(13, "opencl")
    f(X)
    assert f._exe._last.module is refs[2]()


@needs_c
def test_refits_reuse_compiled_functions():
    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    m = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(3)], input_dim=5)
    opt = optim.Adam(lr=1e-3)

    def fns():
        return ([id(f) for f in m._train_cache["entry"]["fns"].values()]
                + [id(v[3]["c"]) for v in m._eval_cache.values()] + [id(m._predict_cache["c"])])

    for i in range(4):
        m.fit(Xs, y, epochs=1, batch_size=16, optimizer=opt, progress=False, backend="c")
        m.predict(Xs, backend="c")
        m.evaluate(Xs, y, backend="c")
        if i == 0:
            first = fns()
    assert fns() == first


def test_r4_cuda_kernel_lookups_do_not_keep_every_module():
    # no CuPy needed: the lookup memo only calls module.get_function under the device
    import contextlib

    from graphc.runtime.cuda import CudaDevice

    class Module:
        def get_function(self, name):
            return (name, id(self))

    dev = object.__new__(CudaDevice)
    dev.device = contextlib.nullcontext()
    dev._functions = {}
    dev.FUNCTION_CACHE_SIZE = 4
    refs = []
    for _ in range(6):  # six programs built and dropped, two kernels each
        m = Module()
        assert dev.kernel(m, "k0") == ("k0", id(m)) and dev.kernel(m, "k0") == ("k0", id(m))
        dev.kernel(m, "k1")
        refs.append(weakref.ref(m))
        del m
    pygc.collect()
    assert len(dev._functions) <= 4
    assert [r() is None for r in refs] == [True] * 4 + [False] * 2


@needs_c
def test_r5_recompiling_one_graph_does_not_grow_cffi_libraries():
    from graphc.runtime import cpu
    first = _mlp_step(7, "c")  # (the module of the tests above: one gcc run less)
    first(X)
    # an FFI made by cdef keeps every library it opened (``_libraries``); the pre-parsed one
    # graphc uses (runtime/_gc_ffi.py) keeps none: check both ways of loading
    for ffi in (cpu._ffi(), cpu._parsed_ffi()):
        kept = lambda: len(getattr(ffi, "_libraries", ()))  # noqa: E731
        lib = cpu._load(first._exe._last.path, ffi)
        n = kept()
        for _ in range(3):
            assert cpu._load(first._exe._last.path, ffi) is lib
        assert kept() == n
    for _ in range(3):
        f = _mlp_step(7, "c")
        f(X)
        assert f._exe._last.lib is first._exe._last.lib
        del f
    pygc.collect()
