"""Every op's forward value against an independent numpy formula (tests/op_cases.py), on
float32 and float64, with broadcasting, size-1 dims and scalars; operator overloads; numerical
stability; dropout and batch norm behaviour."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from op_cases import CASES, by_id, case_params, check_forward, np_sigmoid, np_softmax


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case,shapes", case_params())
def test_forward(case, shapes, dtype, backend):
    check_forward(case, shapes, dtype, backend=backend)


@pytest.mark.parametrize("case,shapes", [
    p for p in case_params() if len({len(s) for s in p.values[1]}) == 1
    and len({s[0] for s in p.values[1] if s}) == 1 and () not in p.values[1]
    and not p.values[0].id.startswith("maxout(pieces=2,axis=0)")])
def test_forward_free_batch_dimension(case, shapes, backend):
    """The same cases built with a free (None) first dimension."""
    check_forward(case, shapes, "float32", backend=backend, free_batch=True)


def test_table_covers_api():
    """Every op named in API.md "Building a graph" has at least one case."""
    api = ("add sub mul div neg pow matmul transpose reshape exp log sqrt abs cos sin square "
           "maximum minimum where greater less equal sum mean max logsumexp sigmoid tanh relu "
           "leaky_relu prelu elu selu softplus hard_tanh softsign silu mish gelu step maxout "
           "softmax log_softmax mse binary_cross_entropy binary_cross_entropy_with_logits "
           "cross_entropy l1_penalty l2_penalty dropout batch_norm").split()
    ids = {c.id.split("(")[0] for c in CASES}
    missing = [a for a in api if a not in ids]
    assert not missing, missing
    for a in api:
        assert callable(getattr(gc, a))


# -- operator overloads ------------------------------------------------------------------------

def _run(inputs, out, *vals):
    return gc.compile(inputs, out)(*vals)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_operator_overloads(dtype, rng):
    a = rng.uniform(0.5, 2.0, (3, 4)).astype(dtype)
    b = rng.uniform(0.5, 2.0, (3, 4)).astype(dtype)
    arr = rng.uniform(0.5, 2.0, (1, 4))  # float64 numpy: weakly typed, takes the graph's dtype
    m = rng.standard_normal((4, 2))
    x = gc.placeholder((3, 4), dtype, name="x")
    y = gc.placeholder((3, 4), dtype, name="y")
    cases = [
        (x + y, a + b), (x - y, a - b), (x * y, a * b), (x / y, a / b), (x ** y, a ** b),
        (x + 2, a + 2), (2 + x, 2 + a), (x - 2.5, a - 2.5), (2.5 - x, 2.5 - a),
        (x * 3, a * 3), (3 * x, 3 * a), (x / 4, a / 4), (4 / x, 4 / a),
        (x ** 2, a ** 2), (2 ** x, 2 ** a), (x ** 0.5, np.sqrt(a)),
        (x + arr, a + arr), (arr + x, arr + a), (x - arr, a - arr), (arr - x, arr - a),
        (x * arr, a * arr), (arr * x, arr * a), (x / arr, a / arr), (arr / x, arr / a),
        (x ** arr, a ** arr), (arr ** x, arr ** a),
        (x @ m, a @ m), (m.T @ x.T, m.T @ a.T), (-x, -a), (x.T, a.T), (x @ y.T, a @ b.T),
    ]
    outs = [c[0] for c in cases]
    for o in outs:
        assert o.dtype == dtype, o
    got = _run([x, y], outs, a, b)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for (o, want), g in zip(cases, got):
        assert g.shape == np.shape(want)
        np.testing.assert_allclose(g, want, rtol=tol, atol=tol)


def test_scalar_placeholders_and_python_scalars():
    s = gc.placeholder((), "float64", name="s")
    v = gc.placeholder((3,), "float64", name="v")
    out = _run([s, v], [s * v + 1, gc.sum(v) / s, s ** 2], 2.0, np.arange(3.0))
    np.testing.assert_allclose(out[0], [1, 3, 5])
    np.testing.assert_allclose(out[1], 1.5)
    np.testing.assert_allclose(out[2], 4.0)
    assert out[2].shape == ()


def test_int_and_bool_dtypes():
    i = gc.placeholder((3,), "int64", name="i")
    x = gc.placeholder((3,), "float32", name="x")
    assert (i + 1).dtype == "int64"
    assert (i + x).dtype == "float32"
    assert (i * 0.5).dtype == "float32"
    assert gc.greater(x, 0).dtype == "bool"
    assert gc.sum(gc.greater(x, 0)).dtype == "int64"
    assert gc.mean(i).dtype == "float32"
    assert gc.logsumexp(i).dtype == "float32"
    got = _run([i, x], [i + 1, i + x, gc.sum(gc.greater(x, 0)), gc.logsumexp(i)],
               np.array([1, 2, 3]), np.array([-1.0, 2.0, 3.0]))
    np.testing.assert_allclose(got[3], np.log(np.exp([1, 2, 3]).sum()), rtol=1e-6)
    np.testing.assert_array_equal(got[0], [2, 3, 4])
    np.testing.assert_allclose(got[1], [0, 4, 6])
    assert got[2] == 2


def test_constants_parameters_and_metadata():
    p = gc.parameter(np.ones((2, 3)), name="W")
    c = gc.constant([1.0, 2.0, 3.0])
    assert p.shape == (2, 3) and p.name == "W" and p.dtype == "float64"
    assert c.dtype == "float32" and c.shape == (3,)
    assert gc.constant(3).dtype == "int64"
    assert gc.constant(1.5, dtype="float64").dtype == "float64"
    x = gc.placeholder((None, 3), name="x")
    assert x.shape == (None, 3) and x.dtype == "float32" and x.name == "x"
    y = x * c
    assert y.shape == (None, 3)
    out = _run([x], p @ gc.transpose(y * 1.0), np.ones((4, 3), np.float32))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, np.full((2, 4), 6.0))
    v = p.value
    v[0, 0] = 99  # a copy
    assert p.value[0, 0] == 1
    p.value = np.zeros((2, 3))
    np.testing.assert_array_equal(p.value, 0)
    with pytest.raises(ValueError):
        p.value = np.zeros((3, 2))


def test_free_batch_dimension():
    x = gc.placeholder((None, 4), "float64", name="x")
    w = gc.parameter(np.arange(8.0).reshape(4, 2))
    out = gc.softmax(x @ w, axis=-1)
    assert out.shape == (None, 2)
    f = gc.compile([x], [out, gc.mean(x, axis=0), gc.reshape(x, (-1,))])
    for n in (1, 3, 7):
        xs = np.random.default_rng(n).standard_normal((n, 4))
        o, m, r = f(xs)
        np.testing.assert_allclose(o, np_softmax(xs @ np.arange(8.0).reshape(4, 2)))
        np.testing.assert_allclose(m, xs.mean(0))
        assert r.shape == (4 * n,)


# -- numerical stability -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numerical_stability(dtype):
    x = gc.placeholder((4,), dtype, name="x")
    t = gc.placeholder((4,), dtype, name="t")
    big = np.array([1000.0, -1000.0, 100.0, -100.0], dtype)
    tgt = np.array([0.0, 1.0, 1.0, 0.0], dtype)
    outs = [gc.softplus(x), gc.sigmoid(x), gc.log_softmax(x), gc.softmax(x),
            gc.binary_cross_entropy_with_logits(x, t, reduction="none"), gc.logsumexp(x),
            gc.grad(gc.sum(gc.softplus(x)), x), gc.grad(gc.sum(gc.sigmoid(x)), x),
            gc.grad(gc.binary_cross_entropy_with_logits(x, t, reduction="sum"), x),
            gc.grad(gc.logsumexp(x), x), gc.silu(x), gc.mish(x), gc.elu(x), gc.selu(x),
            gc.gelu(x), gc.gelu(x, approximate="tanh"), gc.tanh(x), gc.softsign(x)]
    got = _run([x, t], outs, big, tgt)
    for g in got:
        assert np.all(np.isfinite(g)), got
    sp_, sg, lsm, sm, bce, lse, dsp, dsg, dbce, dlse = got[:10]
    np.testing.assert_allclose(sp_, [1000, 0, 100, 0], atol=1e-6)
    np.testing.assert_allclose(sg, [1, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(lsm, [0, -2000, -900, -1100], rtol=1e-6)
    np.testing.assert_allclose(sm, [1, 0, 0, 0], atol=1e-6)
    # bce_with_logits: x=1000,t=0 -> 1000; x=-1000,t=1 -> 1000; x=100,t=1 -> 0; x=-100,t=0 -> 0
    np.testing.assert_allclose(bce, [1000, 1000, 0, 0], atol=1e-4)
    np.testing.assert_allclose(lse, 1000, rtol=1e-6)
    np.testing.assert_allclose(dsp, [1, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(dsg, [0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(dbce, [1, -1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(dlse, [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(got[10], [1000, 0, 100, 0], atol=1e-4)  # silu
    np.testing.assert_allclose(got[12][1], -1.0, rtol=1e-6)  # elu(-1000)
    # logsumexp of large equal values, and of a row with -inf-like entries
    y = gc.placeholder((2, 3), dtype, name="y")
    v = np.array([[1000.0, 1000.0, 1000.0], [-1000.0, 0.0, -1e30]], dtype)
    lse2, lsm2 = _run([y], [gc.logsumexp(y, axis=1), gc.log_softmax(y, axis=1)], v)
    np.testing.assert_allclose(lse2, [1000 + np.log(3), 0.0], rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(lsm2[0])) and np.isfinite(lsm2[1, :2]).all()


def test_cross_entropy_large_logits_and_bce_clamp():
    lg = gc.placeholder((2, 3), "float64", name="lg")
    lb = gc.placeholder((2,), "int64", name="lb")
    p = gc.placeholder((2,), "float64", name="p")
    t = gc.placeholder((2,), "float64", name="t")
    ce, bce = _run([lg, lb, p, t], [gc.cross_entropy(lg, lb, reduction="none"),
                                   gc.binary_cross_entropy(p, t, reduction="none")],
                   np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]]), np.array([1, 2]),
                   np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(ce, [1000.0, np.log(3)])
    np.testing.assert_allclose(bce, [100.0, 100.0])  # log clamped at -100, as PyTorch


# -- dropout --------------------------------------------------------------------------------------

def test_dropout_inference_is_identity():
    x = gc.placeholder((3, 4), name="x")
    assert gc.dropout(x, 0.5, training=False) is x
    assert gc.dropout(x, 0.0, training=True) is x


def test_dropout_training_scaling_and_fraction():
    rate = 0.3
    x = gc.placeholder((200, 50), "float64", name="x")
    y = gc.dropout(x, rate, training=True, seed=11)
    xs = np.random.default_rng(0).uniform(1, 2, (200, 50))
    out = gc.compile([x], y)(xs)
    kept = out != 0
    np.testing.assert_allclose(out[kept], xs[kept] / (1 - rate))
    assert abs(kept.mean() - (1 - rate)) < 0.02


def test_dropout_same_mask_forward_and_backward_new_mask_each_call():
    rate = 0.5
    x = gc.placeholder((40, 30), "float64", name="x")
    y = gc.dropout(x, rate, training=True, seed=3)
    w = np.random.default_rng(1).standard_normal((40, 30))
    g = gc.grad(gc.sum(y * w), x)
    f = gc.compile([x], [y, g])
    xs = np.random.default_rng(2).uniform(1, 2, (40, 30))
    y1, g1 = f(xs)
    np.testing.assert_allclose(g1, w * (y1 != 0) / (1 - rate))
    y2, g2 = f(xs)
    np.testing.assert_allclose(g2, w * (y2 != 0) / (1 - rate))
    assert not np.array_equal(y1 != 0, y2 != 0)  # a new mask on each call


def test_dropout_deterministic_by_seed():
    def first_mask(seed):
        x = gc.placeholder((30, 30), "float32", name="x")
        return gc.compile([x], gc.dropout(x, 0.5, True, seed=seed))(np.ones((30, 30))) != 0
    np.testing.assert_array_equal(first_mask(42), first_mask(42))
    assert not np.array_equal(first_mask(42), first_mask(43))


def test_dropout_training_placeholder():
    x = gc.placeholder((20, 20), "float32", name="x")
    tr = gc.placeholder((), "bool", name="training")
    f = gc.compile([x, tr], gc.dropout(x, 0.5, tr, seed=1))
    xs = np.ones((20, 20), np.float32)
    np.testing.assert_array_equal(f(xs, False), xs)
    on = f(xs, True)
    assert set(np.unique(on)) <= {0.0, 2.0} and 0.3 < (on != 0).mean() < 0.7
    np.testing.assert_array_equal(f(xs, training=np.array(False)), xs)
    with pytest.raises(TypeError):
        gc.dropout(x, 0.5, training=gc.placeholder((), "float32"))
    for rate in (1.5, -0.1, float("nan")):  # (rate 1 drops everything, as PyTorch's)
        with pytest.raises(ValueError):
            gc.dropout(x, rate, training=True)


# -- batch norm ---------------------------------------------------------------------------------

def _bn_graph(training, momentum=0.1, dtype="float64", shape=(6, 3)):
    x = gc.placeholder((None,) + shape[1:], dtype, name="x")
    n = int(np.prod(shape[1:]))
    gamma = gc.parameter(np.linspace(0.5, 1.5, n).reshape(shape[1:]).astype(dtype), name="gamma")
    beta = gc.parameter(np.linspace(-1, 1, n).reshape(shape[1:]).astype(dtype), name="beta")
    rm = gc.parameter(np.full(shape[1:], 0.2, dtype), name="rm", trainable=False)
    rv = gc.parameter(np.full(shape[1:], 2.0, dtype), name="rv", trainable=False)
    y = gc.batch_norm(x, gamma, beta, rm, rv, training=training, momentum=momentum)
    return x, gamma, beta, rm, rv, y


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batch_norm_training_updates_running_stats(momentum):
    x, gamma, beta, rm, rv, y = _bn_graph(True, momentum)
    f = gc.compile([x], y)
    xs = np.random.default_rng(0).standard_normal((6, 3)) * 3 + 1
    out = f(xs)
    g, b = gamma.value, beta.value
    np.testing.assert_allclose(out, g * (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5) + b)
    m1 = (1 - momentum) * 0.2 + momentum * xs.mean(0)
    v1 = (1 - momentum) * 2.0 + momentum * xs.var(0, ddof=1)  # unbiased for the running var
    np.testing.assert_allclose(rm.value, m1)
    np.testing.assert_allclose(rv.value, v1)
    xs2 = np.random.default_rng(1).standard_normal((4, 3))
    f(xs2)
    np.testing.assert_allclose(rm.value, (1 - momentum) * m1 + momentum * xs2.mean(0))
    np.testing.assert_allclose(rv.value, (1 - momentum) * v1 + momentum * xs2.var(0, ddof=1))


def test_batch_norm_inference_uses_running_stats():
    x, gamma, beta, rm, rv, y = _bn_graph(False)
    xs = np.random.default_rng(0).standard_normal((5, 3))
    out = gc.compile([x], y)(xs)
    np.testing.assert_allclose(out, gamma.value * (xs - 0.2) / np.sqrt(2.0 + 1e-5) + beta.value)
    np.testing.assert_array_equal(rm.value, 0.2)
    np.testing.assert_array_equal(rv.value, 2.0)


def test_batch_norm_training_placeholder():
    tr = gc.placeholder((), "bool", name="training")
    x, gamma, beta, rm, rv, y = _bn_graph(tr)
    f = gc.compile([x, tr], y)
    xs = np.random.default_rng(0).standard_normal((6, 3))
    out = f(xs, False)
    np.testing.assert_allclose(out, gamma.value * (xs - 0.2) / np.sqrt(2.0 + 1e-5) + beta.value)
    np.testing.assert_array_equal(rm.value, 0.2)  # not updated in inference
    out = f(xs, True)
    np.testing.assert_allclose(out, gamma.value * (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5)
                               + beta.value)
    np.testing.assert_allclose(rm.value, 0.9 * 0.2 + 0.1 * xs.mean(0))


def test_batch_norm_4d_features_and_float32():
    x, gamma, beta, rm, rv, y = _bn_graph(True, dtype="float32", shape=(5, 2, 3))
    xs = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out = gc.compile([x], y)(xs)
    assert out.dtype == np.float32 and out.shape == (5, 2, 3)
    np.testing.assert_allclose(out, gamma.value * (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5)
                               + beta.value, rtol=1e-4, atol=1e-5)
    assert rm.value.dtype == np.float32


def test_expressions_that_simplify_away_an_input_keep_the_broadcast_shape():
    """SymPy folds x - x, 0 * x, where(c, a, a): the result still has numpy's broadcast
    shape (and x - x must build at all)."""
    x = gc.placeholder((3, 4), "float64", name="x")
    y = gc.placeholder((4,), "float64", name="y")
    c = gc.placeholder((3, 4), "bool", name="c")
    outs = [x - x, 0 * x, x * 0 + y, gc.where(c, y, y), y - y + x * 0, gc.sum(x * 0)]
    assert [o.shape for o in outs] == [(3, 4)] * 5 + [()]
    ys = np.arange(4.0)
    got = _run([x, y, c], outs, np.ones((3, 4)), ys, np.ones((3, 4), bool))
    want = [np.zeros((3, 4)), np.zeros((3, 4)), np.broadcast_to(ys, (3, 4)),
            np.broadcast_to(ys, (3, 4)), np.zeros((3, 4)), 0.0]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    gx, gy = _run([x, y], gc.grad(gc.sum(x * 0 + y), [x, y]), np.ones((3, 4)), ys)
    np.testing.assert_array_equal(gx, np.zeros((3, 4)))
    np.testing.assert_array_equal(gy, np.full(4, 3.0))
