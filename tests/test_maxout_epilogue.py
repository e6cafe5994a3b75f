"""maxout of a GEMM's output computed in the GEMM's kernel (the C backend: ``lower.GroupMax``,
gc_gemm.h's row hook), differentially against the numpy backend, forward and backward.

The C GEMM picks a path from the shapes (gc_gemm.h): one row of C (matrix-vector, chunks of 256
columns), K <= 16 with few rows (small K: whole rows), few columns (narrow: whole rows), few rows
with B's rows far apart (transposed output: MR-column tiles), else register tiles (NR columns,
one or several K blocks).  Groups of ``pieces`` columns that a path's tiles cut are computed
after the product from the stored rows; the cases below reach each path with pieces that divide
its tile width and pieces that do not (on AVX-512: MR 8, NR 32; the ISA variants at the end run
the same cases with AVX2's 6 x 16 and SSE's 4 x 8 tiles)."""
from __future__ import annotations

import platform

import numpy as np
import pytest

import graphc as gc
import graphc.lower as L
from backends import OPENCL, c_available
from graphc import nn, optim

pytestmark = pytest.mark.skipif(not c_available(), reason="no C compiler")

# (batch, in_dim, units, pieces): the forward GEMM is batch x (units * pieces) x in_dim
GRID = [(batch, k, units, pieces)
        for batch, k in ((1, 30), (3, 12), (17, 40), (100, 50))
        for units in (1, 5, 33) for pieces in (2, 3, 4, 5)]
PATHS = [
    (1, 40, 100, 3),     # one row: 300 columns in chunks of 256 (cut groups)
    (1, 40, 64, 4),      # one row: 256-column chunks hold whole groups
    (3, 12, 33, 5),      # small K: whole rows
    (17, 40, 1, 5),      # narrow: 5 columns
    (100, 40, 5, 2),     # narrow with AVX-512 (10 columns), tiles with AVX2 / SSE
    (17, 100, 129, 4),   # transposed output (B's rows 2064 bytes apart), MR-aligned groups
    (17, 100, 172, 3),   # transposed output, groups cut by 8-column tiles
    (3, 64, 104, 5),     # transposed output with 3 rows (B not transposed: no matrix-vector)
    (100, 50, 33, 4),    # register tiles, NR-aligned groups
    (100, 50, 33, 3),    # register tiles, cut groups
    (100, 520, 21, 5),   # register tiles over two K blocks (partial sums in scratch)
    (64, 784, 64, 4),    # one M block, A read in place
    (257, 60, 40, 4),    # several M blocks (threads split M)
]


def _case(batch, k, units, pieces, seed, dtype="float32", integer=False):
    """(placeholder, feed, [maxout output, d/dx, d/dW, d/db]) of one dense maxout layer with a
    weighted-sum cost.  ``integer``: small integer values, so that every sum is exact and the
    pieces of a group tie often (the gradient is shared among tied maxima)."""
    rng = np.random.default_rng(seed)
    n = units * pieces
    if integer:
        xv = rng.integers(-2, 3, (batch, k)).astype(dtype)
        Wv = rng.integers(-2, 3, (k, n)).astype(dtype)
        bv = rng.integers(-2, 3, n).astype(dtype)
    else:
        xv = rng.standard_normal((batch, k)).astype(dtype)
        Wv = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
        bv = (0.1 * rng.standard_normal(n)).astype(dtype)
    x = gc.placeholder((batch, k), dtype, name=f"x{seed}")
    W = gc.parameter(Wv, name=f"W{seed}")
    b = gc.parameter(bv, name=f"b{seed}")
    out = gc.maxout(x @ W + b, pieces)
    weights = gc.constant(rng.standard_normal((batch, units)), dtype=dtype)
    grads = gc.grad(gc.sum(out * weights), [x, W, b])
    return x, xv, [out] + grads


def _program(cases, dtype="float32", integer=False, seed=0):
    inputs, feeds, outputs, labels = [], [], [], []
    for n, shape in enumerate(cases):
        x, xv, outs = _case(*shape, seed=seed + n, dtype=dtype, integer=integer)
        inputs.append(x)
        feeds.append(xv)
        outputs += outs
        labels += [f"{shape} {what}" for what in ("forward", "d/dx", "d/dW", "d/db")]
    return inputs, feeds, outputs, labels


def _compare(cases, dtype="float32", integer=False, backend="c", seed=0):
    """Run ``cases`` on numpy and ``backend``; return the backend's function."""
    inputs, feeds, outputs, labels = _program(cases, dtype, integer, seed)
    want = gc.compile(inputs, outputs, backend="numpy")(*feeds)
    f = gc.compile(inputs, outputs, backend=backend)
    got = f(*feeds)
    rtol, atol = (2e-5, 2e-5) if dtype == "float32" else (1e-12, 1e-12)
    for g, w, label in zip(got, want, labels):
        if integer and label.endswith("forward"):
            np.testing.assert_array_equal(g, w, err_msg=label)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=label)
    return f


def _kernels(f):
    return f._exe._current().lowered.kernels


def _assert_folded(f, cases):
    """Every case's maxout is computed by its forward GEMM's kernel: no separate max kernel."""
    ks = _kernels(f)
    hosts = [k for k in ks if k.group_max is not None]
    assert sorted(k.group_max.pieces for k in hosts) == sorted(c[3] for c in cases)
    assert all(k.kind == "dense" and "_maxout" in k.name for k in hosts)
    assert not [k.name for k in ks if k.kind == "reduce" and k.node.op == "max"]
    assert f.source.count("#define GC_GEMM_ROW_HOOK") == len(cases)


@pytest.mark.parametrize("pieces", [2, 3, 4, 5])
def test_grid_matches_numpy(pieces):
    cases = [c for c in GRID if c[3] == pieces]
    _assert_folded(_compare(cases), cases)


def test_every_gemm_path_matches_numpy():
    _assert_folded(_compare(PATHS), PATHS)


def test_ties_and_exact_values():
    """Integer data: exact sums, many ties; the maxima equal numpy's bit for bit and the
    gradient is shared among tied pieces as the numpy backend shares it."""
    cases = PATHS[:6] + [(17, 40, 5, 3), (100, 50, 33, 3)]
    _assert_folded(_compare(cases, integer=True, seed=100), cases)


def test_float64():
    cases = [(1, 30, 5, 3), (17, 40, 33, 4), (100, 50, 33, 3), (100, 40, 5, 2)]
    _assert_folded(_compare(cases, dtype="float64", seed=200), cases)


def test_same_bits_as_the_separate_reduction(monkeypatch):
    """The fold changes where the max is computed, not what: the separate reduction kernel
    (FOLD_GROUP_MAX off) gives identical bits, forward and backward, NaN included."""
    cases = PATHS
    inputs, feeds, outputs, _ = _program(cases, seed=300)
    feeds[2][1, 3] = np.nan  # a NaN row of z in the small-K case
    folded = gc.compile(inputs, outputs, backend="c")
    got = folded(*feeds)
    _assert_folded(folded, cases)
    monkeypatch.setattr(L, "FOLD_GROUP_MAX", False)
    separate = gc.compile(inputs, outputs, backend="c")
    want = separate(*feeds)
    assert all(k.group_max is None for k in _kernels(separate))
    assert sum(k.node.op == "max" for k in _kernels(separate)) == len(cases)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("where", ["first", "last"])
def test_nan_propagates(where):
    """A NaN piece makes its group's maximum NaN wherever it is in the group (as the max
    reduction: gc_max2f), other groups unaffected; a NaN input row gives a NaN output row."""
    batch, k, units, pieces = 17, 40, 33, 3
    rng = np.random.default_rng(5)
    x = gc.placeholder((batch, k), name="x")
    bv = rng.standard_normal(units * pieces).astype(np.float32)
    col = 0 if where == "first" else pieces - 1
    bv[4 * pieces + col] = np.nan                  # group 4 of every row
    W = gc.parameter(rng.standard_normal((k, units * pieces)).astype(np.float32), name="W")
    b = gc.parameter(bv, name="b")
    out = gc.maxout(x @ W + b, pieces)
    xv = rng.standard_normal((batch, k)).astype(np.float32)
    xv[7, 2] = np.nan                              # row 7
    want = gc.compile([x], out, backend="numpy")(xv)
    f = gc.compile([x], out, backend="c")
    got = f(xv)
    _assert_folded(f, [(batch, k, units, pieces)])
    assert np.isnan(got[:, 4]).all() and np.isnan(got[7]).all()
    assert not np.isnan(np.delete(np.delete(got, 7, axis=0), 4, axis=1)).any()
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, equal_nan=True)


def test_not_folded_where_it_does_not_apply():
    """A max over another axis of a GEMM's output, and a maxout of something else than a GEMM's
    output, stay separate reductions (and right)."""
    rng = np.random.default_rng(6)
    x = gc.placeholder((6, 10), name="x")
    W = gc.parameter(rng.standard_normal((10, 12)).astype(np.float32), name="W")
    z = x @ W
    outs = [gc.maxout(z, 2, axis=0), gc.max(gc.reshape(z, (6, 3, 4)), axis=1),
            gc.maxout(gc.exp(x), 5)]
    xv = rng.standard_normal((6, 10)).astype(np.float32)
    want = gc.compile([x], outs, backend="numpy")(xv)
    f = gc.compile([x], outs, backend="c")
    for g, w in zip(f(xv), want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
    assert all(k.group_max is None for k in _kernels(f))


def test_max_over_all_columns_is_one_group():
    """max(z, axis=-1) of a GEMM's output is a maxout with one group of all columns."""
    rng = np.random.default_rng(7)
    x = gc.placeholder((17, 40), name="x")
    W = gc.parameter(rng.standard_normal((40, 70)).astype(np.float32), name="W")
    out = gc.max(x @ W, axis=-1, keepdims=True)
    g = gc.grad(gc.sum(out * out), [x, W])
    xv = rng.standard_normal((17, 40)).astype(np.float32)
    want = gc.compile([x], [out] + g, backend="numpy")(xv)
    f = gc.compile([x], [out] + g, backend="c")
    for a, b in zip(f(xv), want):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    assert [k.group_max.pieces for k in _kernels(f) if k.group_max] == [70]


def test_check_grad():
    """The gradient rule (gc.check_grad: float64 finite differences), and the C backend's
    float64 gradient against finite differences of its own cost."""
    rng = np.random.default_rng(8)
    x = gc.placeholder((5, 6), name="x")
    W = gc.parameter(rng.standard_normal((6, 12)), name="W", dtype="float64")
    b = gc.parameter(rng.standard_normal(12), name="b", dtype="float64")
    wts = gc.constant(rng.standard_normal((5, 4)))
    xv = rng.standard_normal((5, 6))
    cost = gc.sum(gc.maxout(gc.cast(x, "float64") @ W + b, 3) * wts)
    gc.check_grad(cost, [x, W, b], {x: xv})

    x64 = gc.placeholder((5, 6), "float64", name="x64")
    cost64 = gc.sum(gc.maxout(x64 @ W + b, 3) * wts)
    f_cost = gc.compile([x64], cost64, backend="c")
    f_grad = gc.compile([x64], gc.grad(cost64, [x64]), backend="c")
    _assert_folded(f_grad, [(5, 6, 4, 3)])
    (gx,) = f_grad(xv)
    eps = 1e-6
    for idx in np.ndindex(*xv.shape):
        up, dn = xv.copy(), xv.copy()
        up[idx] += eps
        dn[idx] -= eps
        fd = (float(f_cost(up)) - float(f_cost(dn))) / (2 * eps)
        assert abs(fd - gx[idx]) <= 1e-5 * max(1.0, abs(fd)), (idx, fd, gx[idx])


@pytest.mark.parametrize("pieces,units", [(2, 7), (3, 5), (4, 33), (5, 5)])
def test_dense_maxout_training_matches_numpy(pieces, units):
    """nn.Dense(activation="maxout") trained a few steps: the same losses and weights as the
    numpy backend (and its maxout is computed in the GEMM kernel)."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((40, 13)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    results = {}
    for backend in ("numpy", "c"):
        m = nn.Sequential([nn.Dense(units, "maxout", pieces=pieces), nn.Dense(4, "softmax")],
                          13, seed=3)
        h = m.fit(X, y, optimizer=optim.Adam(1e-2), epochs=2, batch_size=17, backend=backend,
                  progress=False, shuffle=False)
        results[backend] = h["loss"], m.get_weights()
    np.testing.assert_allclose(results["c"][0], results["numpy"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results["c"][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_training_step_kernels():
    """One compiled training step of a maxout MLP: the hidden layer's GEMM computes z and its
    maxout (kernel k0_dense_add_maxout), no max reduction runs, and the updates match numpy."""
    rng = np.random.default_rng(10)
    x = gc.placeholder((None, 30), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter((rng.standard_normal((30, 64)) * 0.2).astype(np.float32), name="W1")
    b1 = gc.parameter(np.zeros(64, np.float32), name="b1")
    W2 = gc.parameter((rng.standard_normal((16, 10)) * 0.2).astype(np.float32), name="W2")
    b2 = gc.parameter(np.zeros(10, np.float32), name="b2")
    ps = [W1, b1, W2, b2]
    loss = gc.cross_entropy(gc.maxout(x @ W1 + b1, 4) @ W2 + b2, y)
    init = [p.value.copy() for p in ps]
    X = rng.standard_normal((37, 30)).astype(np.float32)
    Y = rng.integers(0, 10, 37)
    results = {}
    for backend in ("numpy", "c"):
        for p, v in zip(ps, init):
            p.value = v.copy()
        f = gc.compile([x, y], loss, backend=backend,
                       updates=optim.SGD(0.1, momentum=0.9).updates(ps, gc.grad(loss, ps)))
        results[backend] = [float(f(X, Y)) for _ in range(3)], [p.value.copy() for p in ps]
    np.testing.assert_allclose(results["c"][0], results["numpy"][0], rtol=1e-5)
    for a, b in zip(results["c"][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    names = [k.name for k in _kernels(f)]
    assert names[0] == "k0_dense_add_maxout", names


@pytest.mark.parametrize("backend", [OPENCL])
def test_gpu_lowering_keeps_the_reduction(backend):
    """The GPU renderers share the lowering without the fold (lower_gpu): a separate max
    reduction, results as numpy's."""
    cases = [(17, 40, 5, 3), (100, 50, 33, 4)]
    f = _compare(cases, backend=backend, seed=400)
    low = f._exe._current().lowered if hasattr(f._exe, "_current") else f._exe.lowered
    assert all(k.group_max is None for k in low.kernels)


ISA_FLAGS = {
    # AVX2 (no AVX-512): 6 x 16 float tiles; SSE: 4 x 8 (which groups the tiles cut changes)
    "avx2": "-O3 -march=native -mno-avx512f -fopenmp -std=gnu11 -fno-math-errno",
    "sse": "-O3 -march=x86-64 -mtune=native -fopenmp -std=gnu11 -fno-math-errno",
}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 flags")
@pytest.mark.parametrize("isa", sorted(ISA_FLAGS))
def test_other_vector_widths(isa, monkeypatch):
    if isa == "avx2" and "avx2" not in open("/proc/cpuinfo").read():
        pytest.skip("no AVX2")
    monkeypatch.setenv("GRAPHC_CFLAGS", ISA_FLAGS[isa])
    cases = PATHS[:9] + [(17, 40, 5, 4), (17, 60, 33, 3), (100, 50, 33, 5)]
    _assert_folded(_compare(cases, seed=500), cases)
    _compare(cases[:6], dtype="float64", seed=600)


# 2..4 rows with B's rows more than GC_GEMM_DIRECT_LDB_BYTES (2048) apart: the matrix-vector
# path with all rows in one pass over B (256-column chunks: pieces 3 and 5 cut groups, 4 not)
FEW_ROWS = [(2, 30, 200, 3), (3, 12, 171, 3), (4, 64, 130, 4), (2, 20, 129, 4), (3, 50, 103, 5),
            (4, 1, 200, 3), (2, 7, 300, 5)]


@pytest.mark.parametrize("threads", [1, 2])
def test_few_rows_matrix_vector_path(threads):
    old = gc.get_num_threads()
    gc.set_num_threads(threads)
    try:
        _assert_folded(_compare(FEW_ROWS, seed=1000 + threads), FEW_ROWS)
        _compare(FEW_ROWS, integer=True, seed=1100 + threads)
        _compare(FEW_ROWS[:4], dtype="float64", seed=1200 + threads)
    finally:
        gc.set_num_threads(old)
