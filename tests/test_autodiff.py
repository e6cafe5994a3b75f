"""gc.grad: fan-out sums, un-broadcasting, unused wrt, higher orders, the textbook examples
(XOR, Algorithm 6.4 on an MLP with weight decay)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from op_cases import numeric_grad, np_softmax


def _f64(shape, name):
    return gc.placeholder(shape, "float64", name=name)


def test_fan_out_sums_contributions(rng):
    x = _f64((5,), "x")
    y = x * x + gc.sin(x) * x + x + gc.exp(x) / x
    g = gc.grad(gc.sum(y), x)
    xs = rng.uniform(0.5, 2, 5)
    got = gc.compile([x], g)(xs)
    want = 2 * xs + np.cos(xs) * xs + np.sin(xs) + 1 + np.exp(xs) / xs - np.exp(xs) / xs ** 2
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_parameter_used_in_two_layers(rng):
    w = gc.parameter(rng.standard_normal((3, 3)), name="W")
    x = _f64((2, 3), "x")
    cost = gc.sum(gc.tanh(gc.tanh(x @ w) @ w))
    gc.check_grad(cost, [w, x], {x: rng.standard_normal((2, 3))})


@pytest.mark.parametrize("xshape,yshape", [((3, 1), (1, 4)), ((), (3, 4)), ((4,), (2, 3, 4)),
                                           ((1, 4), (3, 4)), ((2, 1, 4), (3, 1)),
                                           ((1,), ())])
def test_unbroadcast(xshape, yshape, rng):
    x, y = _f64(xshape, "x"), _f64(yshape, "y")
    xs, ys = rng.standard_normal(xshape), rng.standard_normal(yshape)
    out = x * y + x
    gx, gy = gc.grad(gc.sum(out), [x, y])
    assert gx.shape == xshape and gy.shape == yshape
    vx, vy = gc.compile([x, y], [gx, gy])(xs, ys)
    full = np.broadcast_shapes(xshape, yshape)
    ex = np.broadcast_to(ys + 1, full)
    ey = np.broadcast_to(xs, full)

    def down(g, shape):
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead)))
        return g.sum(axis=tuple(i for i, d in enumerate(shape) if d == 1), keepdims=True)

    np.testing.assert_allclose(vx, down(ex, xshape))
    np.testing.assert_allclose(vy, down(ey, yshape))


def test_unbroadcast_free_batch_dim(rng):
    x = _f64((None, 3), "x")
    b = gc.parameter(np.zeros(3), name="b")
    gb = gc.grad(gc.sum(gc.square(x + b)), b)
    f = gc.compile([x], gb)
    for n in (1, 4):
        xs = rng.standard_normal((n, 3))
        np.testing.assert_allclose(f(xs), 2 * xs.sum(0))


def test_unused_wrt_gets_zeros_and_list_vs_single(rng):
    x, z = _f64((3,), "x"), _f64((2, 2), "z")
    zb = gc.placeholder((None, 2), "float32", name="zb")
    cost = gc.sum(x * x)
    single = gc.grad(cost, x)
    assert isinstance(single, gc.Tensor) and single.shape == (3,)
    lst = gc.grad(cost, [x])
    assert isinstance(lst, list) and len(lst) == 1
    gx, gz, gzb = gc.grad(cost, [x, z, zb])
    assert gz.shape == (2, 2) and gzb.dtype == "float32"
    xs = rng.standard_normal(3)
    vx, vz, vzb = gc.compile([x, z, zb], [gx, gz, gzb])(xs, np.ones((2, 2)), np.ones((5, 2)))
    np.testing.assert_allclose(vx, 2 * xs)
    np.testing.assert_array_equal(vz, np.zeros((2, 2)))
    np.testing.assert_array_equal(vzb, np.zeros((5, 2), np.float32))
    p = gc.parameter(np.ones(4))
    (gp,) = gc.grad(cost, [p])
    np.testing.assert_array_equal(gc.compile([x], gp)(xs), np.zeros(4))


def test_stop_gradient_and_integer_paths(rng):
    x = _f64((4,), "x")
    y = gc.stop_gradient(x * 3) * x + gc.where(gc.greater(x, 0), x, 2 * x)
    g = gc.grad(gc.sum(y), x)
    xs = np.array([-1.0, 2.0, -3.0, 4.0])
    np.testing.assert_allclose(gc.compile([x], g)(xs), 3 * xs + np.where(xs > 0, 1, 2))


def test_grad_errors():
    x = _f64((3,), "x")
    with pytest.raises(gc.ShapeError):
        gc.grad(x * 2, x)  # not a scalar
    with pytest.raises(ValueError):
        gc.grad(gc.sum(x), gc.placeholder((3,), "int64"))
    with pytest.raises(TypeError):
        gc.grad(gc.sum(x), np.ones(3))


def _tanh_mlp(rng):
    x = _f64((3, 4), "x")
    w1 = gc.parameter(rng.standard_normal((4, 5)) * 0.7, name="W1")
    w2 = gc.parameter(rng.standard_normal((5, 2)) * 0.7, name="W2")
    cost = gc.sum(gc.square(gc.tanh(gc.tanh(x @ w1) @ w2)))
    return x, w1, w2, cost


def test_second_order_tanh_mlp(rng):
    x, w1, w2, cost = _tanh_mlp(rng)
    g = gc.grad(cost, x)
    h = gc.grad(gc.sum(g), x)
    xs = rng.standard_normal((3, 4))
    f_g = gc.compile([x], gc.sum(g))
    got = gc.compile([x], h)(xs)
    want = numeric_grad(lambda a: float(f_g(a)), [xs], 0, eps=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # second order with respect to a parameter too, through check_grad
    gc.check_grad(gc.sum(gc.grad(cost, w1) * 0.5), [x, w1, w2], {x: xs})


def test_third_order_scalar():
    x = _f64((), "x")
    f = gc.sin(x) * x ** 2
    d1 = gc.grad(f, x)
    d2 = gc.grad(d1, x)
    d3 = gc.grad(d2, x)
    run = gc.compile([x], [d1, d2, d3])
    for v in (-1.3, 0.4, 2.0):
        a, b, c = run(v)
        np.testing.assert_allclose(a, np.cos(v) * v ** 2 + 2 * v * np.sin(v), rtol=1e-12)
        np.testing.assert_allclose(b, -v ** 2 * np.sin(v) + 4 * v * np.cos(v) + 2 * np.sin(v),
                                   rtol=1e-12)
        np.testing.assert_allclose(c, -v ** 2 * np.cos(v) - 6 * v * np.sin(v) + 6 * np.cos(v),
                                   rtol=1e-11)


@pytest.mark.parametrize("which", ["softmax", "log_softmax", "cross_entropy", "logsumexp",
                                   "sigmoid", "max", "mean", "bce_logits", "batch_norm"])
def test_grad_of_grad(which, rng):
    x = _f64((3, 4), "x")
    w = gc.constant(rng.standard_normal((3, 4)), dtype="float64")
    labels = gc.constant(np.array([0, 3, 1]))
    if which == "softmax":
        cost = gc.sum(gc.softmax(x, axis=1) * w)
    elif which == "log_softmax":
        cost = gc.sum(gc.log_softmax(x, axis=0) * w)
    elif which == "cross_entropy":
        cost = gc.cross_entropy(x, labels)
    elif which == "logsumexp":
        cost = gc.sum(gc.logsumexp(x, axis=1) * gc.constant([1.0, -2.0, 0.5], "float64"))
    elif which == "sigmoid":
        cost = gc.sum(gc.sigmoid(x) * w)
    elif which == "max":
        cost = gc.sum(gc.max(x * x, axis=1))
    elif which == "mean":
        cost = gc.mean(gc.square(x * w))
    elif which == "bce_logits":
        cost = gc.binary_cross_entropy_with_logits(x, gc.constant(np.full((3, 4), 0.3)))
    else:
        rm = gc.parameter(np.zeros(4), trainable=False)
        rv = gc.parameter(np.ones(4), trainable=False)
        cost = gc.sum(gc.batch_norm(x, gc.constant(np.ones(4)), gc.constant(np.zeros(4)), rm,
                                    rv, training=True) * w)
    g = gc.grad(cost, x)
    w2 = gc.constant(rng.standard_normal((3, 4)), dtype="float64")
    gc.check_grad(gc.sum(g * w2), x, {x: rng.standard_normal((3, 4))}, rtol=1e-3, atol=1e-6)


def test_goodfellow_xor_exact():
    X = gc.placeholder((4, 2), "float32", name="X")
    W = gc.constant([[1.0, 1.0], [1.0, 1.0]])
    c = gc.constant([0.0, -1.0])
    w = gc.constant([1.0, -2.0])
    b = gc.constant(0.0)
    y = gc.relu(X @ W + c) @ w + b
    out = gc.compile([X], y)(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
    np.testing.assert_array_equal(out, [0, 1, 1, 0])
    Xd, yd = gc.data.xor()
    np.testing.assert_array_equal(gc.compile([X], y)(Xd), yd)


def test_mlp_weight_decay_matches_algorithm_6_4(rng):
    """gc.grad of J = mse + lambda * Omega (Omega = sum of squared weights) against the
    textbook backward pass (Algorithm 6.4), written out in numpy."""
    n, d, h1, h2, o, lam = 6, 4, 5, 3, 2, 0.03
    Xs, Ys = rng.standard_normal((n, d)), rng.standard_normal((n, o))
    Ws = [rng.standard_normal(s) * 0.5 for s in ((d, h1), (h1, h2), (h2, o))]
    bs = [rng.standard_normal(s) * 0.1 for s in (h1, h2, o)]
    X, Y = _f64((n, d), "X"), _f64((n, o), "Y")
    W = [gc.parameter(w, name=f"W{k + 1}") for k, w in enumerate(Ws)]
    B = [gc.parameter(b, name=f"b{k + 1}") for k, b in enumerate(bs)]
    acts = [gc.tanh, gc.relu, lambda t: t]
    h = X
    for k in range(3):
        h = acts[k](h @ W[k] + B[k])
    J = gc.mse(h, Y) + lam * gc.l2_penalty(W)
    grads = gc.compile([X, Y], gc.grad(J, W + B))(Xs, Ys)

    # forward, keeping a_k and h_k (rows are examples: h_k = f(h_{k-1} W_k + b_k))
    fprime = [lambda a: 1 - np.tanh(a) ** 2, lambda a: (a > 0).astype(float),
              lambda a: np.ones_like(a)]
    fs = [np.tanh, lambda a: np.maximum(a, 0), lambda a: a]
    hs, as_ = [Xs], []
    for k in range(3):
        as_.append(hs[-1] @ Ws[k] + bs[k])
        hs.append(fs[k](as_[-1]))
    yhat = hs[-1]
    # Algorithm 6.4: g <- grad_yhat J; for k = l..1: g <- g * f'(a_k); grad_b = g;
    # grad_W = g h_{k-1}^T + lambda grad_W Omega; g <- W_k^T g
    g = 2 * (yhat - Ys) / yhat.size
    gW, gb = [None] * 3, [None] * 3
    for k in reversed(range(3)):
        g = g * fprime[k](as_[k])
        gb[k] = g.sum(axis=0)
        gW[k] = hs[k].T @ g + lam * 2 * Ws[k]
        g = g @ Ws[k].T
    for got, want in zip(grads, gW + gb):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_grad_wrt_intermediate_and_cost_itself(rng):
    x = _f64((3,), "x")
    h = gc.tanh(x)
    cost = gc.sum(h * h)
    gh, gcost = gc.grad(cost, [h, cost])
    xs = rng.standard_normal(3)
    vh, vc = gc.compile([x], [gh, gcost])(xs)
    np.testing.assert_allclose(vh, 2 * np.tanh(xs))
    assert vc == 1.0


def test_check_grad_itself(rng):
    """check_grad passes on float32 graphs (run in float64), with parameters, through dropout
    (a fixed mask), and raises AssertionError naming the worst entry on a wrong gradient;
    it changes no parameter."""
    x = gc.placeholder((3, 4), "float32", name="x")
    w = gc.parameter(rng.standard_normal((4, 2)).astype(np.float32), name="W")
    w0 = w.value
    cost = gc.mean(gc.softplus(gc.dropout(x @ w, 0.5, training=True, seed=2)))
    gc.check_grad(cost, [x, w], {x: rng.standard_normal((3, 4))}, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(w.value, w0)
    y = _f64((3,), "y")
    wrong = gc.sum(gc.stop_gradient(y) * y)  # gc.grad says y, the truth is 2y
    with pytest.raises(AssertionError) as e:
        gc.check_grad(wrong, y, {y: np.array([1.0, -3.0, 2.0])})
    assert "index (1,)" in str(e.value) and "y" in str(e.value)
    with pytest.raises(ValueError):
        gc.check_grad(gc.sum(y) * gc.sum(x), y, {y: np.ones(3)})  # x not fed
