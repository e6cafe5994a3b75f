"""C reductions (sum, mean, max, logsumexp) on their serial and parallel paths: every axis
layout against numpy, 1 and 2 threads, run-to-run determinism, and bias updates folded into a
column sum's final loop (SGD, Adam) against the numpy backend."""
import shutil
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.c import GC_PAR_MIN

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

OPS = ["sum", "mean", "max", "logsumexp"]

# (shape, axis): small (serial) and large (parallel, by outputs or split into chunks)
CASES = [((1,), None), ((3,), 0), ((17,), None), ((100,), 0), ((5000,), None),
         ((100000,), None),                          # full: chunks of one row
         ((3, 70000), 0), ((3, 70000), 1), ((3, 70000), None),
         ((4096, 1024), 0), ((4096, 1024), 1),       # column sums (blocks x chunks), row sums
         ((2048, 256), 0),                           # a bias gradient: one block, chunks
         ((64, 8192), 0),                            # enough blocks: no chunks
         ((17, 5, 33), (0, 2)), ((40, 50, 60), 1), ((40, 50, 60), (0, 2)),
         ((64, 30, 70), (1, 2)), ((30, 64, 40), (0, 1)), ((7, 1, 9), 0), ((0, 5), 0),
         ((4, 1, 300), 1), ((1, 1), (0, 1))]           # only size-1 axes reduced


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    gc.set_num_threads(0)


def reference(op, x, axis, keepdims):
    x64 = x.astype(np.float64)
    if op == "logsumexp":  # the registry's stable reference (the numpy backend), in float64
        p = gc.placeholder(x.shape, "float64")
        return gc.compile([p], gc.logsumexp(p, axis=axis, keepdims=keepdims))(x64)
    with warnings.catch_warnings():  # numpy warns on the mean of an empty axis (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        return getattr(np, op)(x64, axis=axis, keepdims=keepdims)


def check(op, x, axis, keepdims, threads):
    gc.set_num_threads(threads)
    p = gc.placeholder(x.shape, str(x.dtype))
    f = gc.compile([p], getattr(gc, op)(p, axis=axis, keepdims=keepdims), backend="c")
    got = f(x)
    ref = reference(op, x, axis, keepdims)
    assert got.shape == ref.shape
    if x.dtype == np.int64 and op in ("sum", "max"):
        np.testing.assert_array_equal(got, ref.astype(np.int64))  # exact
        return
    n = max(x.size // max(ref.size, 1), 1)
    # float32 sums of up to LONG_REDUCTION terms accumulate in float (as numpy's across rows)
    rtol = 1e-12 if x.dtype == np.float64 else (1e-6 * np.sqrt(n) if op == "sum" else 2e-6)
    scale = np.sqrt(n) if op == "sum" else 1.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,axis", CASES, ids=[f"{s}-{a}" for s, a in CASES])
@pytest.mark.parametrize("op", OPS)
def test_float32_against_numpy(op, shape, axis, threads):
    if op in ("max", "logsumexp") and 0 in shape:
        pytest.skip("max of an empty axis is a shape error")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    check(op, x, axis, False, threads)


@pytest.mark.parametrize("shape,axis", [((5000,), None), ((3, 70000), 0), ((2048, 256), 0),
                                        ((40, 50, 60), (0, 2)), ((17, 5, 33), 1)])
@pytest.mark.parametrize("dtype", ["float64", "int64"])
@pytest.mark.parametrize("op", OPS)
def test_other_dtypes_keepdims(op, dtype, shape, axis):
    rng = np.random.default_rng(1)
    if dtype == "int64":
        if op == "logsumexp":
            pytest.skip("logsumexp of integers: float only")
        x = rng.integers(-2**40, 2**40, size=shape, dtype=np.int64)  # beyond float precision
    else:
        x = rng.standard_normal(shape)
    check(op, x, axis, True, 2)


def test_long_float32_sums_accumulate_in_double():
    """More than LONG_REDUCTION terms per output: double accumulators, chunks too."""
    x = np.full((3, 1 << 20), 0.1, np.float32)
    for axis, expect in ((1, 3), (None, 1)):
        p = gc.placeholder(x.shape)
        got = gc.compile([p], gc.sum(p, axis=axis), backend="c")(x)
        ref = np.sum(x.astype(np.float64), axis=axis)
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        assert np.size(got) == expect


@pytest.mark.parametrize("op", ["max", "logsumexp", "sum"])
@pytest.mark.parametrize("shape,axis", [((3, 70000), 1), ((3, 70000), None), ((2048, 256), 0),
                                        ((64, 8192), 0), ((300,), None)])
def test_nan_and_inf_propagate(op, shape, axis):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[7] = np.nan
    flat[-5] = np.inf
    flat[x.size // 2] = -np.inf
    gc.set_num_threads(2)
    p = gc.placeholder(shape)
    got = gc.compile([p], getattr(gc, op)(p, axis=axis), backend="c")(x)
    with np.errstate(invalid="ignore"):
        ref = reference(op, x, axis, False)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-4, atol=1e-3)


def test_all_minus_inf_chunks_in_logsumexp():
    """A chunk of -inf only beside a chunk of very negative values: the chunks' partial sums
    are rescaled to the overall maximum, the empty chunk adding nothing."""
    x = np.full((1 << 17,), -np.inf, np.float32)
    x[-1000:] = -1000.0
    p = gc.placeholder(x.shape)
    got = gc.compile([p], gc.logsumexp(p), backend="c")(x)
    np.testing.assert_allclose(got, -1000.0 + np.log(1000.0), rtol=1e-6)


@pytest.mark.parametrize("shape,axis", [((4096, 1024), 0), ((3, 70000), None),
                                        ((2048, 256), 0), ((4096, 1024), 1)])
def test_deterministic_run_to_run_and_across_threads(shape, axis):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    p = gc.placeholder(shape)
    f = gc.compile([p], gc.sum(p, axis=axis), backend="c")
    gc.set_num_threads(2)
    first = f(x)
    for _ in range(5):
        np.testing.assert_array_equal(f(x), first)
    gc.set_num_threads(1)  # tasks and chunks depend on the shapes only
    np.testing.assert_array_equal(f(x), first)


def test_no_heap_in_reduction_kernels():
    for shape, axis in [((128,), None), ((2048, 256), 0), ((4096, 1024), 1), ((17, 5, 33), 1)]:
        p = gc.placeholder(shape)
        for op in OPS:
            f = gc.compile([p], getattr(gc, op)(p, axis=axis), backend="c")
            f(np.ones(shape, np.float32))
            assert "malloc" not in f.source and "calloc" not in f.source


def test_parallel_paths_taken():
    """The shapes above do reach the parallel (and chunked) code."""
    assert 2048 * 256 >= GC_PAR_MIN
    p = gc.placeholder((2048, 256))
    f = gc.compile([p], gc.sum(p, axis=0), backend="c")
    f(np.ones((2048, 256), np.float32))
    assert "omp parallel for" in f.source and "pa[c * 256L" in f.source


def train(backend, opt, batch, width, steps=3):
    rng = np.random.default_rng(4)
    W = gc.parameter(rng.standard_normal((32, width)).astype("float32") * 0.1, name="W")
    b = gc.parameter(rng.standard_normal(width).astype("float32") * 0.1, name="b")
    x = gc.placeholder((batch, 32), name="x")
    t = gc.placeholder((batch, width), name="t")
    loss = gc.mean(gc.square(gc.tanh(x @ W + b) - t))
    params = [W, b]
    f = gc.compile([x, t], loss, backend=backend,
                   updates=opt.updates(params, gc.grad(loss, params)))
    X = rng.standard_normal((batch, 32)).astype("float32")
    T = rng.standard_normal((batch, width)).astype("float32")
    losses = [f(X, T) for _ in range(steps)]
    return f, losses, W.value.copy(), b.value.copy()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch,width", [(2048, 256), (64, 8192), (8, 10)])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_bias_update_folded_into_column_sum(opt, batch, width, threads):
    """(2048, 256): the update runs in the chunks' combining loop; (64, 8192): in the task
    owning each block of outputs; (8, 10): serial."""
    gc.set_num_threads(threads)
    make = (lambda: gc.optim.SGD(0.1, momentum=0.9)) if opt == "sgd" else \
        (lambda: gc.optim.Adam(1e-2))
    fc, lc, Wc, bc = train("c", make(), batch, width)
    _, ln, Wn, bn = train("numpy", make(), batch, width)
    assert "_sum_updates(" in fc.source  # the bias update is folded into the column sum
    np.testing.assert_allclose(lc, ln, rtol=1e-4)
    np.testing.assert_allclose(bc, bn, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Wc, Wn, rtol=1e-4, atol=1e-5)
