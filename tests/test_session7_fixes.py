"""Session 7 fixes: softmax, log_softmax and cross-entropy of rows holding +inf are NaN
throughout, as in PyTorch (they were [nan, 0, ...]: the +inf max was replaced by 0)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL

ROWS = np.array([[np.inf, 1, 2, 0], [-np.inf, 0, 1, 3], [np.inf, np.inf, 0, 1],
                 [-np.inf, -np.inf, -np.inf, -np.inf], [np.nan, 1, 2, 0], [1, 2, 3, 4],
                 [-np.inf, np.inf, 0, 1], [1e30, -1e30, 0, 5]], "float32")
# torch 2.13: torch.softmax / log_softmax / cross_entropy of these rows (NaN where any +inf or
# all -inf or NaN; the finite rows as usual)
NAN_ROWS = [0, 2, 3, 4, 6]


def _log_softmax_rows(a):
    z = a - a.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_rows_with_pos_inf_are_nan(backend, op, axis):
    a = ROWS if axis == -1 else np.ascontiguousarray(ROWS.T)
    x = gc.placeholder((None, a.shape[1]), name="x")
    got = gc.compile([x], getattr(gc, op)(x, axis=axis), backend=backend)(a)
    got = got if axis == -1 else got.T
    finite = [r for r in range(len(ROWS)) if r not in NAN_ROWS]
    assert np.isnan(got[NAN_ROWS]).all()
    want = _log_softmax_rows(ROWS[finite].astype("float64"))
    want = np.exp(want) if op == "softmax" else want
    np.testing.assert_allclose(got[finite], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
def test_cross_entropy_of_pos_inf_logits_is_nan(backend):
    x = gc.placeholder((None, 4), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    loss = gc.cross_entropy(x, y, reduction="none")
    (dx,) = gc.grad(gc.sum(loss), [x])
    labels = np.array([1, 1, 3, 0, 1, 2, 2, 3])
    got, gdx = gc.compile([x, y], [loss, dx], backend=backend)(ROWS, labels)
    assert np.isnan(got[NAN_ROWS]).all() and np.isnan(gdx[NAN_ROWS]).all()
    finite = [r for r in range(len(ROWS)) if r not in NAN_ROWS]
    logp = _log_softmax_rows(ROWS[finite].astype("float64"))
    want = -logp[np.arange(len(finite)), labels[finite]]
    p = np.exp(logp)
    np.testing.assert_allclose(got[finite], want, rtol=1e-5)
    onehot = np.eye(4)[labels[finite]]
    np.testing.assert_allclose(gdx[finite], p - onehot, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
def test_logsumexp_keeps_pos_inf(backend):
    x = gc.placeholder((None, 4), name="x")
    got = gc.compile([x], gc.logsumexp(x, axis=1), backend=backend)(ROWS)
    assert got[0] == np.inf and got[2] == np.inf and got[6] == np.inf
    assert got[3] == -np.inf and np.isnan(got[4])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    t = torch.tensor(ROWS)
    x = gc.placeholder((None, 4), name="x")
    f = gc.compile([x], [gc.softmax(x), gc.log_softmax(x), gc.logsumexp(x, axis=1)],
                   backend="c")
    for got, want in zip(f(ROWS), [torch.softmax(t, -1), torch.log_softmax(t, -1),
                                   torch.logsumexp(t, -1)]):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


# -- the gradient of a matrix shared by a batch of products -------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
@pytest.mark.parametrize("shape", [(2, 5, 3), (None, 5, 3), (2, 1, 4, 3), (None, None, 3)])
def test_shared_matrix_gradient_is_one_product(backend, shape):
    """d/dW of x(batch.., K) @ W(K, N) is one (K, rows) x (rows, N) product, not a stack of
    per-batch products summed afterwards: same values, no batched product, no stack buffer."""
    rng = np.random.default_rng(7)
    concrete = tuple(d if d is not None else 6 for d in shape)
    xs = rng.standard_normal(concrete)
    ws = rng.standard_normal((3, 4))
    x = gc.placeholder(shape, "float64", name="x")
    W = gc.parameter(ws, name="W")
    y = gc.tanh(x @ W)
    gx, gW = gc.grad(gc.sum(y * y), [x, W])
    got = gc.compile([x], [gx, gW], backend=backend)(xs)
    t = np.tanh(xs @ ws)
    gy = 2 * t * (1 - t * t)
    np.testing.assert_allclose(got[1], xs.reshape(-1, 3).T @ gy.reshape(-1, 4), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[0], gy @ ws.T, rtol=1e-10, atol=1e-12)
    if backend == "c":
        f = gc.compile([x], [gW], backend="c")
        f(xs)
        low = f._exe._current().lowered
        stacks = [k for k in low.kernels if k.node.ndim > 2 and k.node.shape[-2:] == (3, 4)]
        assert not stacks  # no (batch.., K, N) products to sum


def test_shared_matrix_gradient_second_order():
    rng = np.random.default_rng(8)
    x = gc.placeholder((None, 4, 3), "float64", name="x")
    W = gc.parameter(rng.standard_normal((3, 2)), name="W")
    cost = gc.sum(gc.sigmoid(x @ W) ** 2)
    gc.check_grad(cost, [W], {x: rng.standard_normal((2, 4, 3))})
    (gW,) = gc.grad(cost, [W])
    gc.check_grad(gc.sum(gW * gW), [W], {x: rng.standard_normal((2, 4, 3))})


# -- x (batch.., K) @ W (K, N) + b, activation: one dense kernel over all the rows -------------

def _rows_dense_program(extra_shape, act):
    rng = np.random.default_rng(11)
    x = gc.placeholder((2, 3, 5, 7), "float64", name="x")
    W = gc.parameter(rng.standard_normal((7, 4)), name="W")
    e = gc.placeholder(extra_shape, "float64", name="e")
    y = act(x @ W + e)
    gx, gW, ge = gc.grad(gc.sum(y * y), [x, W, e])
    arrays = [rng.standard_normal((2, 3, 5, 7)), rng.standard_normal(extra_shape)]
    return [x, e], [y, gx, gW, ge], arrays


@pytest.mark.parametrize("backend", [C, OPENCL])
@pytest.mark.parametrize("extra_shape", [(4,), (1, 1, 1, 4), (), (2, 3, 5, 4), (2, 1, 1, 4)])
@pytest.mark.parametrize("act", [gc.relu, gc.tanh, gc.gelu], ids=["relu", "tanh", "gelu"])
def test_batched_rows_dense_matches_numpy(backend, extra_shape, act):
    phs, outs, arrays = _rows_dense_program(extra_shape, act)
    want = gc.compile(phs, outs, backend="numpy")(*arrays)
    got = gc.compile(phs, outs, backend=backend)(*arrays)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10, err_msg=f"output {i}")


@pytest.mark.parametrize("extra_shape,fused", [((4,), True), ((2, 3, 5, 4), True),
                                               ((2, 1, 1, 4), False)])
def test_batched_rows_product_takes_the_epilogue(extra_shape, fused):
    """The forward product and its bias + activation are one dense kernel over the 30 rows
    (an input varying along a batch axis without being full-size stays a separate kernel)."""
    from graphc.lower import lower
    phs, outs, arrays = _rows_dense_program(extra_shape, gc.tanh)
    f = gc.compile(phs, outs[:1], backend="numpy")
    kernels = lower(f.program, [a.shape for a in arrays]).kernels
    dense = [k for k in kernels if k.node.op == "dense"]
    assert dense and all(k.node.ndim == 2 and k.node.shape[0] == 30 for k in dense)
    assert (len(kernels) == 1) == fused, [k.name for k in kernels]


def test_two_batched_products_in_one_expression():
    rng = np.random.default_rng(12)
    x = gc.placeholder((3, 4, 5), "float64", name="x")
    z = gc.placeholder((3, 4, 6), "float64", name="z")
    W, V = gc.constant(rng.standard_normal((5, 2))), gc.constant(rng.standard_normal((6, 2)))
    y = gc.sigmoid(x @ W + z @ V)
    xs, zs = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 6))
    got = gc.compile([x, z], y, backend="c")(xs, zs)
    want = 1 / (1 + np.exp(-(xs @ W.value + zs @ V.value)))
    np.testing.assert_allclose(got, want, rtol=1e-12)
