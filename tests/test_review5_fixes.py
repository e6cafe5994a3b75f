"""Regressions for bugs found by the fifth (adversarial) review: outputs and updates that read an
updated parameter (simultaneous update semantics), exact 64-bit integer |x| / max / min in the
generated code, and the numpy reference's integer ``where``."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL

BACKENDS = ["numpy", C, OPENCL]


# -- 1. every output and update reads the parameters' old values -----------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_parameter_output_is_its_value_before_the_update(backend):
    q = gc.parameter(np.ones(3, np.float32), name="q")
    f = gc.compile([], [q, gc.reshape(q, (3, 1)), q * 2], updates=[(q, q + 1)], backend=backend)
    for step in range(2):
        old = q.value
        out = f()
        np.testing.assert_array_equal(out[0], old)
        np.testing.assert_array_equal(out[1], old.reshape(3, 1))
        np.testing.assert_array_equal(out[2], old * 2)
        np.testing.assert_array_equal(q.value, old + 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_swapping_parameters_reads_old_values(backend):
    a = gc.parameter(np.array([1., 2.], np.float32), name="a")
    b = gc.parameter(np.array([3., 4.], np.float32), name="b")
    f = gc.compile([], [], updates=[(a, b), (b, a)], backend=backend)
    f()
    np.testing.assert_array_equal(a.value, [3., 4.])
    np.testing.assert_array_equal(b.value, [1., 2.])
    f()
    np.testing.assert_array_equal(a.value, [1., 2.])
    np.testing.assert_array_equal(b.value, [3., 4.])


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_copying_a_parameter_updated_in_place(backend):
    a = gc.parameter(np.array([1., 2.], np.float32), name="a")
    b = gc.parameter(np.array([3., 4.], np.float32), name="b")
    d = gc.parameter(np.arange(6, dtype=np.float32).reshape(2, 3), name="d")
    e = gc.parameter(np.zeros(6, np.float32), name="e")
    f = gc.compile([], [], updates=[(a, b), (b, b * 2), (e, gc.reshape(d, (6,))), (d, d + 1)],
                   backend=backend)
    f()
    np.testing.assert_array_equal(a.value, [3., 4.])
    np.testing.assert_array_equal(b.value, [6., 8.])
    np.testing.assert_array_equal(e.value, np.arange(6))
    np.testing.assert_array_equal(d.value, np.arange(1, 7).reshape(2, 3))


# -- 2. integer |x|, maximum, minimum are exact (and build on OpenCL) ------------------------

BIG = np.array([2**60 + 1, -(2**60) - 1, 2**53 + 1, -7], dtype=np.int64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["abs", "maximum", "minimum", "mixed"])
def test_int64_abs_max_min_exact(backend, op):
    a = gc.placeholder((4,), dtype="int64", name="a")
    build = {"abs": lambda: gc.abs(a), "maximum": lambda: gc.maximum(a, 0),
             "minimum": lambda: gc.minimum(a, 0),
             "mixed": lambda: gc.abs(-a) - gc.maximum(a, gc.minimum(a, 3))}[op]
    want = {"abs": np.abs(BIG), "maximum": np.maximum(BIG, 0), "minimum": np.minimum(BIG, 0),
            "mixed": np.abs(-BIG) - np.maximum(BIG, np.minimum(BIG, 3))}[op]
    out = gc.compile([a], build(), backend=backend)(BIG)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_kernel_with_float_intermediates(backend):
    # float producers fused into an integer consumer still compute in floating point
    a = gc.placeholder((4,), dtype="int64", name="a")
    v = np.array([3, 5, 7, 10])
    out = gc.compile([a], [gc.cast(gc.sqrt(a) * 10, "int64"),
                           gc.cast(gc.silu(a / 3) * 10, "int64")], backend=backend)(v)
    np.testing.assert_array_equal(out[0], (np.sqrt(v) * 10).astype(np.int64))
    np.testing.assert_array_equal(
        out[1], (v / 3 * (1 / (1 + np.exp(-v / 3))) * 10).astype(np.int64))


# -- 3. where keeps integer precision ------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_int64_where_exact(backend):
    a = gc.placeholder((4,), dtype="int64", name="a")
    out = gc.compile([a], gc.where(gc.greater(a, 0), a, a * 2), backend=backend)(BIG)
    np.testing.assert_array_equal(out, np.where(BIG > 0, BIG, BIG * 2))


# -- 4. gradients of operands broadcast along a free dimension at run time -------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_operand_broadcast_along_free_dim(backend):
    a = gc.placeholder((None, 3), name="a")
    b = gc.placeholder((None, 3), name="b")
    out = gc.sum(a * b, axis=0)
    ga, gb = gc.grad(gc.sum(out * out), [a, b])
    f = gc.compile([a, b], [ga, gb], backend=backend)
    for an, bn in [(1, 4), (4, 1), (3, 3)]:
        av = np.arange(an * 3, dtype=np.float32).reshape(an, 3) + 1
        bv = np.arange(bn * 3, dtype=np.float32).reshape(bn, 3) - 2
        dout = 2 * (av * bv).sum(0)
        want_a = (dout * np.broadcast_to(bv, (max(an, bn), 3))).sum(0, keepdims=True) \
            if an == 1 else dout * np.broadcast_to(bv, (an, 3))
        want_b = (dout * np.broadcast_to(av, (max(an, bn), 3))).sum(0, keepdims=True) \
            if bn == 1 else dout * np.broadcast_to(av, (bn, 3))
        got_a, got_b = f(av, bv)
        assert got_a.shape == av.shape and got_b.shape == bv.shape
        np.testing.assert_allclose(got_a, want_a, rtol=1e-5)
        np.testing.assert_allclose(got_b, want_b, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_free_dim_broadcast_second_order_and_vectors(backend):
    c = gc.placeholder((None, 3), name="c")
    d = gc.placeholder((None,), name="d")
    out = gc.sum(c, axis=1) * d
    gd = gc.grad(gc.sum(out * out), d)
    hd = gc.grad(gc.sum(gd * gd), c)
    f = gc.compile([c, d], [gd, hd], backend=backend)
    cv = np.arange(12, dtype=np.float32).reshape(4, 3)
    gd_v, hd_v = f(cv, np.array([2.0], np.float32))
    s = cv.sum(1)
    assert gd_v.shape == (1,) and hd_v.shape == (4, 3)
    np.testing.assert_allclose(gd_v, [(2 * s * s * 2).sum()], rtol=1e-5)
    # gd = 2 d sum(s^2): d(gd^2)/dc = 2 gd * 2 d * 2 s
    np.testing.assert_allclose(hd_v, np.repeat((2 * gd_v * 2 * 2.0 * 2 * s)[:, None], 3, 1),
                               rtol=1e-5)


# -- 5. integer and boolean matmul are exact on the compiled backends ------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_integer_matmul(backend, dtype):
    rng = np.random.default_rng(5)
    if dtype == "bool":
        av, bv = rng.random((3, 4)) > 0.5, rng.random((2, 4, 5)) > 0.5
    else:
        av = rng.integers(0, 100, (3, 4)).astype(dtype)
        bv = rng.integers(0, 100, (2, 4, 5)).astype(dtype)
    if dtype == "int64":
        av[0, 0] = 2**40 + 1  # beyond float32 and float64's exact products
        bv[0, 0, 0] = 2**20 + 3
    a = gc.placeholder(av.shape, dtype=dtype, name="a")
    b = gc.placeholder(bv.shape, dtype=dtype, name="b")
    c = gc.placeholder(bv.shape[1:], dtype=dtype, name="c")
    out = gc.compile([a, b, c], [a @ b, a @ c, gc.maximum(a @ c, a @ c)], backend=backend)(
        av, bv, bv[1])
    for got, want in zip(out, [av @ bv, av @ bv[1], av @ bv[1]]):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_huge_integer_matmul_is_refused_before_allocating(backend, monkeypatch):
    # its m x k x n products are an intermediate buffer: a clear error, not gigabytes
    from graphc import fusion
    monkeypatch.setattr(fusion, "MAX_INTEGER_MATMUL", 1000)
    a = gc.placeholder((None, 10), dtype="int64", name="a")
    f = gc.compile([a], a @ gc.constant(np.ones((10, 10), np.int64)), backend=backend)
    np.testing.assert_array_equal(f(np.ones((10, 10), np.int64)), np.full((10, 10), 10))
    with pytest.raises(NotImplementedError, match=r"matmul of int64 \(11, 10\) @ \(10, 10\)"):
        f(np.ones((11, 10), np.int64))

