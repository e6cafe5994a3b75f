"""Session 8: behaviour gaps against PyTorch, closed on every backend (numpy, c, opencl).

* G1 the gradient of ``x / x`` at x = +-inf was 0 (PyTorch: NaN): its term -g x / x**2 had its
  repeated input merged, which SymPy simplified to -g / x (0 at inf); merging is now checked
  numerically at IEEE special values and kept apart when it cancels anything.
* G2 ``leaky_relu(-inf, alpha=0)`` was 0 (PyTorch: NaN, -inf * 0) and ``leaky_relu(x < 0)`` /
  ``elu(x < 0)`` with alpha = 0 were +0 (PyTorch: -0): SymPy folded 0 * x to 0.  A zero
  parameter is now a constant operand of the expression (kept symbolic).

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


# -- G2: leaky_relu / elu / prelu with alpha = 0 at -inf --------------------------------------

X2 = np.array([-INF, -2.0, -0.0, 0.0, 3.0, INF, NAN], np.float32)
ZERO_ALPHA = {  # name -> (graphc, torch, forward, gradient of the sum) from PyTorch
    "leaky_relu": (lambda x: gc.leaky_relu(x, alpha=0.0), "leaky_relu",
                   [NAN, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 0]),
    "leaky_relu_int0": (lambda x: gc.leaky_relu(x, 0), "leaky_relu",
                        [NAN, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 0]),
    "elu": (lambda x: gc.elu(x, alpha=0.0), "elu",
            [-0.0, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 1]),
    "prelu": (lambda x: gc.prelu(x, gc.parameter(np.zeros(1, np.float32))), "prelu",
              [NAN, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 0]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(ZERO_ALPHA))
def test_zero_alpha_at_minus_inf(backend, name):
    build, _, want_y, want_g = ZERO_ALPHA[name]
    x = gc.placeholder((7,), name="x")
    y = build(x)
    g = gc.grad(gc.sum(y), x)
    out, grad = gc.compile([x], [y, g], backend=backend)(X2)
    close(out, want_y)
    close(grad, want_g)
    # PyTorch computes alpha * x: -0 for negative x
    np.testing.assert_array_equal(np.signbit(out[1:4]), np.signbit(np.array(want_y[1:4])))


@pytest.mark.parametrize("name", list(ZERO_ALPHA))
def test_zero_alpha_expected_match_torch(name):
    torch = torch_or_skip()
    F = torch.nn.functional
    fn = {"leaky_relu": lambda t: F.leaky_relu(t, 0.0), "elu": lambda t: F.elu(t, 0.0),
          "prelu": lambda t: F.prelu(t, torch.zeros(1))}[ZERO_ALPHA[name][1]]
    t = torch.tensor(X2, requires_grad=True)
    y = fn(t)
    y.sum().backward()
    close(y.detach().numpy(), ZERO_ALPHA[name][2])
    np.testing.assert_array_equal(np.signbit(y.detach().numpy()[1:4]),
                                  np.signbit(np.array(ZERO_ALPHA[name][2][1:4])))
    close(t.grad.numpy(), ZERO_ALPHA[name][3])


def test_nonzero_alpha_stays_a_literal():
    # only a zero parameter becomes an operand: leaky_relu(x, 0.2) reads x alone
    x = gc.placeholder((3,), name="x")
    assert list(gc.leaky_relu(x, 0.2).inputs) == [x]
    assert list(gc.elu(x).inputs) == [x]
