"""Scalar elementwise nodes run as members of one kernel per dtype (``lower.FOLD_SCALARS``):
an optimizer's per-parameter step counters and bias corrections, learning-rate schedules.

Checked on C and OpenCL (PoCL) against the numpy backend, folded and unfolded: Adam training
steps (the kernel count going down), parameters swapped through scalar updates (every member
reads the old values), mixed dtypes (one kernel per dtype), a scalar that depends on a
reduction of a tensor computed from an earlier scalar (no cycle: it keeps its own kernel), and
the CUDA text of the folded kernels compiling.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.lower
from backends import C, OPENCL
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.runtime import nvrtc
from graphc.runtime.gpu_common import expand_includes

BACKENDS = [C, OPENCL]


@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    """PoCL compiles ~3x faster without optimizations (the tests check semantics)."""
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


def kernels(f) -> list:
    return f._exe._current().lowered.kernels


def scalar_hosts(f) -> list:
    return [k for k in kernels(f) if k.node.shape == () and k.members]


def _mlp_step(backend, seed=0):
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, 12), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    sizes = [12, 16, 9, 4]
    params, h = [], x
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        W = gc.parameter((rng.standard_normal((a, b)) * 0.3).astype("float32"), name=f"W{i}")
        bias = gc.parameter(np.zeros(b, "float32"), name=f"b{i}")
        params += [W, bias]
        h = h @ W + bias
        if i < 2:
            h = gc.tanh(h)
    loss = gc.cross_entropy(h, y)
    updates = gc.optim.Adam(1e-2).updates(params, gc.grad(loss, params))
    X = rng.standard_normal((10, 12)).astype("float32")
    Y = rng.integers(0, 4, 10)
    return gc.compile([x, y], loss, updates=updates, backend=backend), [p for p, _ in updates], \
        (X, Y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fold", [True, False])
def test_adam_steps_match_numpy(backend, fold, monkeypatch):
    monkeypatch.setattr(graphc.lower, "FOLD_SCALARS", fold)
    results = {}
    for b in ("numpy", backend):
        f, state, feeds = _mlp_step(b)
        losses = [float(f(*feeds)) for _ in range(4)]
        results[b] = losses, [p.value.copy() for p in state]
    np.testing.assert_allclose(results[backend][0], results["numpy"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results[backend][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # six step counters, each with two bias corrections: 18 scalar nodes
    scalar_kernels = [k for k in kernels(f) if k.node.shape == ()]
    members = sum(len(k.members) for k in scalar_kernels)
    if fold:
        assert scalar_hosts(f) and members >= 12
        assert len(scalar_kernels) <= 4  # the loss's mean + at most 24 arguments per kernel
    else:
        assert members == 0


def test_adam_step_kernel_count_goes_down(monkeypatch):
    counts = {}
    for fold in (False, True):
        monkeypatch.setattr(graphc.lower, "FOLD_SCALARS", fold)
        f, _, feeds = _mlp_step("numpy")
        low = graphc.lower.lower(f.program, [a.shape for a in feeds])
        counts[fold] = len(low.kernels)
    assert counts[True] <= counts[False] - 12, counts


@pytest.mark.parametrize("backend", BACKENDS)
def test_swapped_scalar_parameters_read_old_values(backend):
    # a <- b + 1, b <- a * 2, c <- c + a: every update reads the old values although each
    # writes its parameter in place inside one kernel; outputs read old values too
    a = gc.parameter(np.array(3.0, "float32"), name="a")
    b = gc.parameter(np.array(5.0, "float32"), name="b")
    c = gc.parameter(np.array(1.0, "float32"), name="c")
    s = gc.placeholder((), name="s")
    outs = [a * s, gc.exp(b - a)]
    ups = [(a, b + 1.0), (b, a * 2.0), (c, c + a * s)]
    got = {}
    for be in ("numpy", backend):
        for p, v in ((a, 3.0), (b, 5.0), (c, 1.0)):
            p.value = np.array(v, "float32")
        f = gc.compile([s], outs, updates=ups, backend=be)
        first = f(np.float32(2.0))
        second = f(np.float32(2.0))
        got[be] = [np.asarray(v) for v in first + second] + [p.value for p in (a, b, c)]
        if be != "numpy":
            assert scalar_hosts(f), [k.name for k in kernels(f)]
    for x, y in zip(got[backend], got["numpy"]):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    # a: 3 -> 6 -> 7, b: 5 -> 6 -> 12, c: 1 -> 7 -> 19
    np.testing.assert_allclose([v for v in got[backend][-3:]], [7.0, 12.0, 19.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_kernel_per_dtype(backend):
    s32 = gc.placeholder((), name="s32")
    s64 = gc.placeholder((), "float64", name="s64")
    n = gc.parameter(np.array(0, "int64"), name="n", trainable=False)
    outs = [gc.sqrt(s32 + 1.0) * 3.0, gc.exp(s32) - 1.0,
            gc.sqrt(s64 + 1.0) * 3.0, gc.exp(s64) - 1.0, n * 2]
    feeds = (np.float32(0.3), np.float64(0.3))
    ref = gc.compile([s32, s64], outs, updates=[(n, n + 1)], backend="numpy")(*feeds)
    n.value = np.array(0, "int64")
    f = gc.compile([s32, s64], outs, updates=[(n, n + 1)], backend=backend)
    got = f(*feeds)
    for x, y in zip(got, ref):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_allclose(x, y, rtol=1e-6)
    assert int(n.value) == 1
    for k in scalar_hosts(f):
        assert {m.node.dtype for m in k.members} == {k.node.dtype}
    assert len({k.node.dtype for k in scalar_hosts(f)}) >= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_after_a_reduction_keeps_its_own_kernel(backend):
    # s1 = 2 * p feeds a tensor whose sum feeds s2 = s1 + sum: contracting s2 into s1's kernel
    # would be a cycle, so it is not folded, and the values stay right
    p = gc.parameter(np.array(0.5, "float32"), name="p")
    x = gc.placeholder((50,), name="x")
    s1 = p * 2.0 + 1.0
    total = gc.sum(gc.tanh(x * s1))
    s2 = gc.sqrt(s1 * 3.0) + total
    X = np.linspace(-1, 1, 50).astype("float32")
    ref = gc.compile([x], [s1, s2], backend="numpy")(X)
    f = gc.compile([x], [s1, s2], backend=backend)
    for a, b in zip(f(X), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.skipif(nvrtc.nvcc_path() is None and not nvrtc.nvrtc_available(),
                    reason="no CUDA compiler")
def test_cuda_text_of_folded_scalars_compiles():
    f, _, feeds = _mlp_step("numpy")
    low = lower_gpu(f.program, [a.shape for a in feeds])
    assert any(k.node.shape == () and k.members for k in low.kernels)
    text, launches = render_gpu(low)
    cubin = nvrtc.compile_cubin(expand_includes(text), "scalars", arch="sm_90")
    assert cubin[:4] == b"\x7fELF"
    for fn in {la.function for la in launches}:
        assert fn.encode() in cubin
