"""Fixes of session 6, each with the check that failed before it."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_unsupported_dtype_fails_at_compile_naming_the_node(backend):
    """float16 on C / OpenCL raised TypeError only at the first call (after compile returned)."""
    x = gc.placeholder((3,), "float16", name="half_x")
    with pytest.raises(TypeError, match="float16.*half_x"):
        gc.compile([x], gc.exp(x), backend=backend)
    y = gc.placeholder((3,), name="y")
    with pytest.raises(TypeError, match="float16.*cast"):
        gc.compile([y], gc.cast(y, "float16"), backend=backend)
    # the numpy reference computes it
    f = gc.compile([x], gc.exp(x), backend="numpy")
    assert f(np.ones(3, "float16")).dtype == np.float16


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_uniform_inputs_of_an_elementwise_kernel_are_constants(backend):
    """ones * w (a weighted loss's gradient) read w and a constant, not a kernel's array of ones;
    fills of exact values that a float literal cannot carry (-0.0, int64 beyond 2**53) stay
    exact as constants."""
    from graphc.lower import lower
    x = gc.placeholder((None, 5), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    w = gc.placeholder((None,), name="w")
    W = gc.parameter(np.random.default_rng(0).standard_normal((5, 5)).astype("float32"))
    loss = gc.sum(gc.cross_entropy(x @ W, y, reduction="none") * w)
    (g,) = gc.grad(loss, [W])
    rng = np.random.default_rng(1)
    X, Y, Wt = (rng.standard_normal((7, 5)).astype("float32"), rng.integers(0, 5, 7),
                rng.uniform(0.5, 2, 7).astype("float32"))
    want = gc.compile([x, y, w], [loss, g], backend="numpy")(X, Y, Wt)
    f = gc.compile([x, y, w], [loss, g], backend=backend)
    for a, b in zip(f(X, Y, Wt), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ops = [k.node.op for k in lower(f.program, [(7, 5), (7,), (7,)]).kernels]
    assert "fill_like" not in ops
    i = gc.placeholder((2, 3), "int64", name="i")
    big = gc.ones_like(i) * (2**53 + 1) + i
    z = gc.placeholder((3,), name="z")
    neg = gc.zeros_like(z) * -1.0 + z * 0.0  # -0.0 + 0.0 * z: +0.0 for z > 0 (IEEE), as numpy
    got_big = gc.compile([i], big, backend=backend)(np.zeros((2, 3), "int64"))
    assert (got_big == 2**53 + 1).all()
    zs = np.array([1.0, 2.0, 3.0], "float32")
    np.testing.assert_array_equal(np.signbit(gc.compile([z], neg, backend=backend)(zs)),
                                  np.signbit(gc.compile([z], neg, backend="numpy")(zs)))
