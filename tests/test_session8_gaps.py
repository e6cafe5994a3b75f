"""Session 8: behaviour gaps against PyTorch, closed on every backend (numpy, c, opencl).

* G1 the gradient of ``x / x`` at x = +-inf was 0 (PyTorch: NaN): its term -g x / x**2 had its
  repeated input merged, which SymPy simplified to -g / x (0 at inf); merging is now checked
  numerically at IEEE special values and kept apart when it cancels anything.

Expected values are hard-coded (taken from PyTorch); where torch is importable the tests also
compare with it directly.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL

BACKENDS = ["numpy", C, OPENCL]
NAN, INF = np.nan, np.inf


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


def torch_or_skip():
    return pytest.importorskip("torch")


# -- G1: x / x at +-inf ---------------------------------------------------------------------

X1 = np.array([-1.0, 0.0, 2.0, NAN, INF, -INF, 3.0], np.float32)
DIV_SAME_Y = [1, NAN, 1, NAN, NAN, NAN, 1]
DIV_SAME_G = [0, NAN, 0, NAN, NAN, NAN, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_x_over_x_is_nan_at_inf(backend):
    x = gc.placeholder((7,), name="x")
    y = x / x
    g = gc.grad(gc.sum(y), x)
    out, grad = gc.compile([x], [y, g], backend=backend)(X1)
    close(out, DIV_SAME_Y)
    close(grad, DIV_SAME_G)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_cancellation_of_a_merged_input_is_kept_apart(backend):
    # x * y / x**2 (here the gradient of x / x's denominator: -g x / x**2) is not g / x
    x = gc.placeholder((7,), name="x")
    y = gc.div(x * 3.0, gc.square(x))
    direct = gc.div(gc.mul(x, 3.0), gc.mul(x, x))
    out, out2 = gc.compile([x], [y, direct], backend=backend)(X1)
    with np.errstate(all="ignore"):
        want = (X1.astype(np.float64) * 3.0) / (X1.astype(np.float64) ** 2)
    close(out, want)
    close(out2, want)


def test_x_over_x_matches_torch():
    torch = torch_or_skip()
    t = torch.tensor(X1, requires_grad=True)
    y = t / t
    y.sum().backward()
    close(y.detach().numpy(), DIV_SAME_Y)
    close(t.grad.numpy(), DIV_SAME_G)


def test_merges_that_cancel_nothing_still_merge():
    x = gc.placeholder((3,), name="x")
    for y in (x * x, x + x, gc.maximum(x, x), gc.minimum(x, x), gc.pow(x, x)):
        assert list(y.inputs) == [x], y.attrs["expr"]
