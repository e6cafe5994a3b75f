"""Regressions for bugs found by the twelfth adversarial review (unusual inputs, copies of
graphs and functions, the compile cache, the environment)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as gc
from backends import C, c_available


def _env(cache_dir, **extra):
    return dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), **extra,
                PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))


# -- 1. a cache entry is the module of its own graph, whole --------------------------------------

def _text_section(path):
    """(offset, size) of the .text section of an ELF file."""
    import struct
    data = open(path, "rb").read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def sh(i):
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
    names = sh(shstrndx)[4]
    for i in range(shnum):
        name, _, _, _, off, size = sh(i)
        if data[names + name:names + name + 6] == b".text\0":
            return off, size
    raise AssertionError("no .text")


def _two_graphs_built(tmp_path, monkeypatch):
    """(x, ones, f_a, f_b): exp(x) + 1 and x * 3 compiled and run once, cached under
    tmp_path/first."""
    x = gc.placeholder((4,), name="x")
    ones = np.ones(4, np.float32)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "first"))
    fa = gc.compile([x], gc.exp(x) + 1, backend="c")
    fa(ones)
    fb = gc.compile([x], x * 3, backend="c")
    fb(ones)
    return x, ones, fa, fb


@pytest.mark.skipif(not c_available() or not sys.platform.startswith("linux"),
                    reason="C compiler and ELF modules")
def test_cache_entry_of_another_graph_or_damaged_code_is_rebuilt(tmp_path, monkeypatch):
    # a valid graphc module copied over another graph's entry was loaded and run (exp(x) + 1
    # returned 3 * x), and an entry with damaged code passed every check and killed the process
    # in dlopen (SIGILL): the entry now carries its key and a digest, checked before dlopen
    x, ones, fa, fb = _two_graphs_built(tmp_path, monkeypatch)
    a, b = fa._exe._current().path, fb._exe._current().path
    # a second cache directory (a path not loaded yet in this process) with A's entry replaced
    swapped = tmp_path / "swapped"
    shutil.copytree(a.parent, swapped / "kernels")
    shutil.copyfile(b, swapped / "kernels" / a.name)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(swapped))
    again = gc.compile([x], gc.exp(x) + 1, backend="c")
    np.testing.assert_allclose(again(ones), np.full(4, np.e + 1), rtol=1e-6)
    assert again._exe._current().path == swapped / "kernels" / a.name  # rebuilt in place
    # damaged code: in a child process (without the check it dies)
    damaged = tmp_path / "damaged"
    shutil.copytree(a.parent, damaged / "kernels")
    entry = damaged / "kernels" / a.name
    off, size = _text_section(entry)
    data = bytearray(entry.read_bytes())
    data[off:off + size] = b"\xff" * size
    entry.write_bytes(bytes(data))
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        x = gc.placeholder((4,), name="x")
        print(gc.compile([x], gc.exp(x) + 1, backend="c")(np.ones(4, np.float32))[0])
    """)
    run = subprocess.run([sys.executable, "-c", script], env=_env(damaged), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert abs(float(run.stdout) - (np.e + 1)) < 1e-5


@pytest.mark.skipif(not c_available() or not sys.platform.startswith("linux"),
                    reason="C compiler and ELF modules")
@pytest.mark.parametrize("cflags", ["-fsyntax-only", "-O2 -c", "-O2 -S"])
def test_flags_that_build_no_module_are_a_compile_error(tmp_path, monkeypatch, cflags):
    # GRAPHC_CFLAGS=-fsyntax-only gave FileNotFoundError on a temporary file, -c an object
    # file that dlopen refused, -S "corrupt cache entry": a CompileError naming the flags
    from graphc.runtime.cpu import CompileError
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CFLAGS", cflags)
    x = gc.placeholder((3,), name="x")
    with pytest.raises(CompileError, match="GRAPHC_CFLAGS") as info:
        gc.compile([x], gc.exp(x) * 2, backend="c")(np.ones(3, np.float32))
    assert cflags in str(info.value)


# -- 2. copies of tensors are new nodes -----------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C])
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_copied_parameter_is_a_new_parameter(backend, how):
    # a pickled or copied tensor kept its id, so the copy of W with another value was taken for
    # W itself: W + W2 gave 2 instead of 6
    import copy
    import pickle
    W = gc.parameter(np.ones(3, np.float32), name="W")
    W2 = {"pickle": lambda t: pickle.loads(pickle.dumps(t)), "deepcopy": copy.deepcopy,
          "copy": copy.copy}[how](W)
    assert W2.id != W.id and W2.name == "W" and W2.shape == (3,)
    W2.value = np.full(3, 5, np.float32)
    np.testing.assert_array_equal(W.value, np.ones(3, np.float32))  # values are separate
    f = gc.compile([], W + W2, updates=[(W2, W2 * 2)], backend=backend)
    np.testing.assert_array_equal(f(), np.full(3, 6, np.float32))
    np.testing.assert_array_equal(f(), np.full(3, 11, np.float32))
    np.testing.assert_array_equal(W.value, np.ones(3, np.float32))


def test_pickled_graph_is_a_whole_new_graph():
    import pickle
    x = gc.placeholder((None, 3), name="x")
    W = gc.parameter(np.arange(6, dtype=np.float32).reshape(3, 2), name="W")
    h = gc.tanh(x @ W)
    loss = gc.sum(h * h)
    x2, h2, loss2 = pickle.loads(pickle.dumps((x, h, loss)))
    assert x2.id != x.id and h2.id != h.id and loss2.id != loss.id
    order = gc.ir.toposort([loss2])
    assert h2 in order and x2 in order  # shared nodes stay shared
    assert len(order) == len(gc.ir.toposort([loss]))
    X = np.random.RandomState(0).randn(4, 3).astype(np.float32)
    W2 = next(t for t in gc.ir.toposort([loss2]) if t.op == "parameter")
    g1 = gc.compile([x], [loss, gc.grad(loss, W)])(X)
    g2 = gc.compile([x2], [loss2, gc.grad(loss2, W2)])(X)
    for u, v in zip(g1, g2):
        np.testing.assert_allclose(u, v, rtol=1e-6)
    with pytest.raises(ValueError, match="placeholder"):
        gc.compile([x], loss2)  # the copy reads its own placeholder


# -- 3. a compiled function says it cannot be pickled ----------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C])
def test_compiled_function_pickling_is_a_clear_error(backend):
    # pickle / deepcopy failed deep inside cffi ("Can't pickle local object
    # '_make_ffi_library.<locals>.FFILibrary'") or on a lock
    import copy
    import pickle
    x = gc.placeholder((None, 2), name="x")
    f = gc.compile([x], x * 2, backend=backend)
    f(np.ones((1, 2), np.float32))
    with pytest.raises(TypeError, match="compiled graphc function cannot be pickled.*gc.compile"):
        pickle.dumps(f)
    with pytest.raises(TypeError, match="compiled graphc function cannot be pickled"):
        copy.deepcopy(f)
    g = copy.copy(f)  # a shallow copy still shares the compiled code
    np.testing.assert_array_equal(g(np.ones((3, 2))), np.full((3, 2), 2, np.float32))


# -- 4. absurd thread counts ------------------------------------------------------------------------

THREADS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, graphc as gc
    if len(sys.argv) > 1:
        gc.set_num_threads(int(sys.argv[1]))
    x = gc.placeholder((None, 64), name="x")
    W = gc.parameter(np.full((64, 48), 0.01, np.float32), name="W")
    f = gc.compile([x], [gc.sum(gc.tanh(x @ W), axis=0), gc.sum(x * x)], backend="c")
    a, b = f(np.ones((4096, 64), np.float32))
    print(round(float(a[0]), 1), float(b), gc.get_num_threads())
""")


@pytest.mark.skipif(not c_available(), reason="no C compiler")
@pytest.mark.parametrize("omp,arg", [("99999", None), (None, "40000"), (None, str(2**40))])
def test_absurd_thread_counts_do_not_kill_the_process(omp, arg):
    # OMP_NUM_THREADS=99999 segfaulted in libgomp (its team start data is on the stack),
    # set_num_threads(40000) ended the process ("libgomp: Thread creation failed"), and
    # set_num_threads(2**40) raised OverflowError from cffi half-way through the modules
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if omp:
        env["OMP_NUM_THREADS"] = omp
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__)))
    run = subprocess.run([sys.executable, "-c", THREADS_SCRIPT] + ([arg] if arg else []),
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    a, b, threads = run.stdout.split()
    assert (float(a), float(b), int(threads)) == (round(4096 * np.tanh(0.64), 1), 4096 * 64.0, 1024)


# -- 5. tensors hold numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [np.ones(2, complex), np.array([1.0, None], object), "abc",
                                   np.array(["a", "b"]), np.array(["2020-01-01"], "datetime64[D]"),
                                   None, {"a": 1}])
def test_parameter_and_constant_of_non_numbers_are_rejected(value):
    # accepted, then failing far away (numpy backend: "data type 'str96' not understood",
    # complex results; C: at compile time) while p.value = the same raised ValueError
    with pytest.raises(ValueError, match="'w'.*not supported"):
        gc.parameter(value, name="w")
    with pytest.raises(ValueError, match="constant.*not supported"):
        gc.constant(value)


def test_parameter_of_a_tensor_is_a_type_error():
    # gc.parameter(t) made an object parameter holding the Tensor
    with pytest.raises(TypeError, match="symbolic tensor"):
        gc.parameter(gc.placeholder((2,)))


@pytest.mark.parametrize("dtype", ["complex64", object, "datetime64[s]", "U3"])
def test_placeholder_and_cast_of_non_number_dtypes_are_rejected(dtype):
    with pytest.raises(TypeError, match="'x'.*not supported|not understood"):
        gc.placeholder((2,), dtype=dtype, name="x")
    if np.dtype(dtype).kind != "U":
        with pytest.raises(TypeError, match="not supported"):
            gc.cast(gc.placeholder((2,)), dtype)


def test_float16_and_ordinary_values_still_work():
    h = gc.placeholder((2,), "float16", name="h")
    assert gc.compile([h], h * 2)(np.ones(2, np.float16)).dtype == np.float16
    for v, dt in ((1, "int64"), (2.5, "float64"), (True, "bool"), ([1.0, 2.0], "float64"),
                  (np.ones(2, np.float16), "float16")):
        assert gc.parameter(v).dtype == dt and gc.constant(v, dtype=dt).dtype == dt


# -- 6. GRAPHC_CFLAGS with AddressSanitizer ---------------------------------------------------------

ASAN_SCRIPT = textwrap.dedent("""
    import numpy as np, graphc as gc
    x = gc.placeholder((3,), name="x")
    try:
        print(gc.compile([x], gc.exp(x) * 2, backend="c")(np.zeros(3, np.float32))[0])
    except ValueError as e:
        print("ValueError", e)
""")


@pytest.mark.skipif(not c_available() or not sys.platform.startswith("linux"), reason="gcc, Linux")
def test_asan_flags_without_its_runtime_are_a_clear_error(tmp_path):
    # the module was built and dlopen'ed, and ASan's runtime then ended the interpreter ("ASan
    # runtime does not come first in initial library list")
    env = _env(tmp_path, GRAPHC_CFLAGS="-O1 -fopenmp -fsanitize=address,undefined")
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([sys.executable, "-c", ASAN_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ValueError GRAPHC_CFLAGS has -fsanitize=address")
    assert "LD_PRELOAD" in run.stdout


# -- 7. steps of one function with updates take turns whatever the input shapes -------------------

@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_concurrent_steps_with_different_shapes_lose_no_update():
    # the lock was per specialization: threads feeding different batch sizes ran their steps at
    # once, both read the old parameter, and updates were lost (P ended at 1197 of 1200)
    import threading
    x = gc.placeholder((None, 4), name="x")
    P = gc.parameter(np.zeros((512, 512), np.float32), name="P", trainable=False)
    f = gc.compile([x], gc.sum(x), updates=[(P, P + 1)], backend="c")
    for n in range(1, 5):
        f(np.ones((n, 4), np.float32))  # every specialization built
    P.value = np.zeros((512, 512), np.float32)
    threads = [threading.Thread(target=lambda n=n: [f(np.ones((n, 4), np.float32))
                                                    for _ in range(150)]) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(P.value, np.full((512, 512), 600, np.float32))


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_index_entry_of_another_graph_is_ignored(tmp_path, monkeypatch):
    # the warm-load index (fingerprint -> module key) was trusted: another graph's index file
    # copied under this graph's name loaded that graph's module (exp(x) + 1 gave 3 * x)
    from graphc.runtime.cpu import lowered_fingerprint
    x, ones, fa, fb = _two_graphs_built(tmp_path, monkeypatch)
    ia, ib = (f._exe._current().path.parent / f"{lowered_fingerprint(f._exe._current().lowered)}.idx"
              for f in (fa, fb))
    shutil.copytree(ia.parent, tmp_path / "second" / "kernels")
    shutil.copyfile(ib, tmp_path / "second" / "kernels" / ia.name)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "second"))
    again = gc.compile([x], gc.exp(x) + 1, backend="c")
    np.testing.assert_allclose(again(ones), np.full(4, np.e + 1), rtol=1e-6)
    # and the rewritten index serves the next warm load, which renders nothing
    warm = gc.compile([x], gc.exp(x) + 1, backend="c")
    np.testing.assert_allclose(warm(ones), np.full(4, np.e + 1), rtol=1e-6)
    assert warm._exe._current()._source is None


# -- 8. batch norm on an empty batch -----------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C])
@pytest.mark.parametrize("training", [True, "placeholder"])
def test_batch_norm_of_an_empty_batch_keeps_the_running_statistics(backend, training):
    # the running mean and variance became NaN (the mean of no rows) and stayed NaN for every
    # later step; torch leaves them as they are (F.batch_norm of a (0, 3) input: zeros, ones)
    x = gc.placeholder((None, 3), name="x")
    rm = gc.parameter(np.array([0.5, -1, 2], np.float32), name="rm", trainable=False)
    rv = gc.parameter(np.array([1, 2, 3], np.float32), name="rv", trainable=False)
    flag = gc.placeholder((), "bool", name="training") if training == "placeholder" else True
    out = gc.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv, flag)
    inputs = [x] + ([flag] if training == "placeholder" else [])
    f = gc.compile(inputs, out, backend=backend)
    extra = [np.bool_(True)] if training == "placeholder" else []
    assert f(np.zeros((0, 3), np.float32), *extra).shape == (0, 3)
    np.testing.assert_array_equal(rm.value, [0.5, -1, 2])
    np.testing.assert_array_equal(rv.value, [1, 2, 3])
    X = np.array([[1, 2, 3], [3, 2, 1]], np.float32)  # a non-empty batch still updates them
    f(X, *extra)
    np.testing.assert_allclose(rm.value, 0.9 * np.array([0.5, -1, 2]) + 0.1 * X.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rv.value, 0.9 * np.array([1, 2, 3]) + 0.1 * X.var(0, ddof=1),
                               rtol=1e-6)


# -- 9. any placeholder name can be fed by keyword -------------------------------------------------

def test_placeholder_named_self_is_fed_by_keyword():
    # f(self=...) raised "Function.__call__() got multiple values for argument 'self'"
    s, a = gc.placeholder((2,), name="self"), gc.placeholder((2,), name="args")
    f = gc.compile([s, a], s - a)
    np.testing.assert_array_equal(f(args=np.ones(2), self=np.full(2, 3.0)), [2, 2])
    np.testing.assert_array_equal(f(np.full(2, 3.0), args=np.ones(2)), [2, 2])


# -- 10. an OpenCL buffer larger than the device allows -------------------------------------------

def test_opencl_buffer_too_large_is_a_memory_error():
    # pyopencl's "LogicError: create_buffer failed: INVALID_BUFFER_SIZE" named nothing
    from backends import opencl_available
    if not opencl_available():
        pytest.skip("no OpenCL device")
    from graphc.runtime.opencl import get_device
    largest = get_device().device.max_mem_alloc_size
    n = int(np.sqrt(largest / 4)) + 2  # (n, n) float32 is just over the largest buffer
    x, y = gc.placeholder((None, 1), name="x"), gc.placeholder((1, None), name="y")
    P = gc.parameter(np.zeros(2, np.float32), name="P", trainable=False)
    z = gc.exp(x + y)  # two readers: stored
    f = gc.compile([x, y], [gc.sum(z), gc.max(z)], updates=[(P, P + 1)], backend="opencl")
    with pytest.raises(MemoryError, match="OpenCL device.*cannot allocate.*largest buffer"):
        f(np.zeros((n, 1), np.float32), np.zeros((1, n), np.float32))
    np.testing.assert_array_equal(P.value, [0, 0])  # nothing was updated
    s, m = f(np.zeros((3, 1), np.float32), np.zeros((1, 2), np.float32))  # and it still works
    assert (s, m) == (6.0, 1.0)
    np.testing.assert_array_equal(P.value, [1, 1])


# -- 11. a snapshot of a trained model ------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C])
def test_deepcopy_of_a_fitted_model_is_an_independent_model(backend):
    # copy.deepcopy(model) after fit / predict failed on the cached compiled functions (a lock,
    # cffi's library); torch users keep snapshots this way (the best epoch's weights)
    import copy
    import pickle
    m = gc.nn.Sequential([gc.nn.Dense(4, activation="relu"), gc.nn.BatchNorm(),
                          gc.nn.Dense(2)], input_dim=3)
    X = np.random.RandomState(0).randn(8, 3).astype(np.float32)
    y = np.array([0, 1] * 4)
    m.fit(X, y, epochs=1, batch_size=4, progress=False, backend=backend)
    before = m.predict(X)
    snap = copy.deepcopy(m)
    np.testing.assert_array_equal(snap.predict(X), before)
    snap.fit(X, y, epochs=2, batch_size=4, progress=False, backend=backend)
    assert not np.allclose(snap.predict(X), before)  # trained on its own weights
    np.testing.assert_array_equal(m.predict(X), before)  # the original untouched
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(again.predict(X), before)
