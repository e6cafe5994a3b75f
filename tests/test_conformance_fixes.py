"""Regressions for conformance bugs found by differential fuzzing against PyTorch: fusing
piecewise activations into piecewise consumers (C1), fused chains that fold to a constant
(C2), second derivatives through sign (C3), API signatures (C4), cross-entropy/softmax
precision (N1), binary cross-entropy and pow gradients at the domain edges (N2, N3) and
relu(nan) (N4).  Expected values are hard-coded (derived from PyTorch); where torch is
importable the tests also compare with it directly."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphc as gc
from backends import C

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the torch comparisons are extra checks
    torch = None


BACKENDS = ["numpy", C]
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


# -- C1: a piecewise activation of a piecewise result, fused on "c" ----------------------------

SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805

# name -> (graphc op, numpy forward, numpy derivative (PyTorch's convention at kinks), torch op)
ACTIVATIONS = {
    "relu": (gc.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0,
             lambda t: F.relu(t)),
    "leaky_relu": (lambda t: gc.leaky_relu(t, alpha=0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda x: np.where(x > 0, 1.0, 0.2), lambda t: F.leaky_relu(t, 0.2)),
    "elu": (gc.elu, lambda x: np.where(x > 0, x, np.expm1(x)),
            lambda x: np.where(x > 0, 1.0, np.exp(x)), lambda t: F.elu(t)),
    "selu": (gc.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)),
             lambda x: SELU_S * np.where(x > 0, 1.0, SELU_A * np.exp(x)), lambda t: F.selu(t)),
    "hard_tanh": (gc.hard_tanh, lambda x: np.clip(x, -1, 1),
                  lambda x: ((x > -1) & (x < 1)) * 1.0, lambda t: F.hardtanh(t)),
    "step": (gc.step, lambda x: (x > 0) * 1.0, lambda x: 0.0 * x,
             lambda t: (t > 0).to(t.dtype)),  # torch.heaviside has no derivative
    "where": (lambda t: gc.where(gc.greater(t, 0.0), t, t * 0.1),
              lambda x: np.where(x > 0, x, 0.1 * x), lambda x: np.where(x > 0, 1.0, 0.1),
              lambda t: torch.where(t > 0, t, t * 0.1)),
}
PAIRS = [(o, i) for o in ACTIVATIONS for i in ACTIVATIONS]
X17 = np.linspace(-2, 2, 17).astype(np.float32)  # kinks of inner(x) - 0.25 are grid points


def _pairs_graph(grad):
    xs = [gc.placeholder((17,), name=f"x{n}") for n in range(len(PAIRS))]
    ys = [ACTIVATIONS[o][0](ACTIVATIONS[i][0](x) - 0.25) for (o, i), x in zip(PAIRS, xs)]
    if not grad:
        return xs, ys
    cost = gc.sum(ys[0])
    for y in ys[1:]:
        cost = cost + gc.sum(y)
    return xs, ys + gc.grad(cost, xs)


def _pairs_expected():
    fwd, der = [], []
    x = X17.astype(np.float64)
    for o, i in PAIRS:
        _, fo, do, _ = ACTIVATIONS[o]
        _, fi, di, _ = ACTIVATIONS[i]
        u = fi(x) - 0.25
        fwd.append(fo(u))
        der.append(do(u) * di(x))
    return fwd, der


@pytest.mark.parametrize("backend", BACKENDS)
def test_piecewise_of_piecewise_forward_all_pairs(backend):
    # on "c" the inner activation is inlined into the outer one: relu(relu(x)) used to raise
    # ZeroDivisionError (RecursionError with hard_tanh inside) from SymPy's Piecewise
    xs, ys = _pairs_graph(grad=False)
    out = gc.compile(xs, ys, backend=backend)(*[X17] * len(xs))
    fwd, _ = _pairs_expected()
    for (o, i), got, want in zip(PAIRS, out, fwd):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{o}({i})")


@pytest.mark.parametrize("backend", BACKENDS)
def test_piecewise_of_piecewise_backward_all_pairs(backend):
    xs, outs = _pairs_graph(grad=True)
    out = gc.compile(xs, outs, backend=backend)(*[X17] * len(xs))
    n = len(PAIRS)
    fwd, der = _pairs_expected()
    for k, (o, i) in enumerate(PAIRS):
        np.testing.assert_allclose(out[k], fwd[k], rtol=1e-5, atol=1e-6, err_msg=f"{o}({i})")
        np.testing.assert_allclose(out[n + k], der[k], rtol=1e-5, atol=1e-6,
                                   err_msg=f"d {o}({i})")


@needs_torch
def test_piecewise_of_piecewise_expected_matches_torch():
    fwd, der = _pairs_expected()
    for k, (o, i) in enumerate(PAIRS):
        t = torch.tensor(X17, requires_grad=True)
        y = ACTIVATIONS[o][3](ACTIVATIONS[i][3](t) - 0.25)
        if y.requires_grad:
            (g,) = torch.autograd.grad(y.sum(), t, allow_unused=True)
            g = np.zeros(17) if g is None else g.numpy()
        else:
            g = np.zeros(17)
        np.testing.assert_allclose(y.detach().numpy(), fwd[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, der[k], rtol=1e-5, atol=1e-6, err_msg=f"{o}({i})")


@pytest.mark.parametrize("backend", BACKENDS)
def test_piecewise_fusion_other_shapes(backend):
    a = np.linspace(-2, 2, 5).astype(np.float32)
    b = a[::-1].copy()
    x = gc.placeholder((5,), name="x")
    y = gc.placeholder((5,), name="y")
    c = gc.placeholder((5,), dtype="bool", name="c")
    outs = [gc.relu(gc.relu(x) + y),
            gc.leaky_relu(gc.hard_tanh(x), alpha=0.2),
            gc.relu(gc.where(c, x, y)),
            gc.prelu(gc.relu(x) - 1.0, y),
            gc.relu(gc.relu(x) + gc.relu(y))]
    got = gc.compile([x, y, c], outs, backend=backend)(a, b, a > 0)
    r = np.maximum(a, 0)
    want = [np.maximum(r + b, 0),
            np.where(np.clip(a, -1, 1) > 0, np.clip(a, -1, 1), 0.2 * np.clip(a, -1, 1)),
            np.maximum(np.where(a > 0, a, b), 0),
            np.where(r - 1 > 0, r - 1, b * (r - 1)),
            np.maximum(r + np.maximum(b, 0), 0)]
    for g, w in zip(got, want):
        close(g, w)


@pytest.mark.parametrize("backend", BACKENDS)
def test_selu_elu_of_shifted_input_keeps_expm1(backend):
    # expm1(x - 0.25) must not become 0.7788 * exp(x) - 1 in generated code: at x = 0.25 that
    # gave 8e-8 > 0, the wrong side of the kink (gradient 1.0507 instead of 1.7581)
    x = gc.placeholder((3,))
    y = gc.selu(x - 0.25)
    g = gc.grad(gc.sum(y), x)
    out, grad = gc.compile([x], [y, g], backend=backend)(np.array([0, 0.25, 1], np.float32))
    close(out, [-0.38889018, 0.0, 0.78802574])
    close(grad, [1.3692092, SELU_S * SELU_A, SELU_S])


# -- C2: fused chains that fold to a constant ------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_fused_chain_keeps_shape(backend):
    x = gc.placeholder((3,))
    outs = [(x + 1.0) * 0.0, gc.exp(x) * 0.0, gc.relu(x) * 0.0, gc.abs(x - x), gc.mish(x - x),
            gc.exp(x) * 0.0 / x * 2.0]
    got = gc.compile([x], outs, backend=backend)(np.array([1, 2, 3], np.float32))
    for g in got:
        assert g.shape == (3,)
        close(g, np.zeros(3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_zero_momentum(backend):
    x = gc.placeholder((None, 3))
    gamma = gc.parameter(np.ones(3, np.float32))
    beta = gc.parameter(np.zeros(3, np.float32))
    rm = gc.parameter(np.full(3, 0.5, np.float32), trainable=False)
    rv = gc.parameter(np.full(3, 2.0, np.float32), trainable=False)
    y = gc.batch_norm(x, gamma, beta, rm, rv, True, momentum=0.0)
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = gc.compile([x], y, backend=backend)(data)
    z = (data - data.mean(0)) / np.sqrt(data.var(0) + 1e-5)
    close(out, z, rtol=1e-4, atol=1e-5)
    close(rm.value, np.full(3, 0.5))
    close(rv.value, np.full(3, 2.0))


# -- C3: second derivatives through sign (DiracDelta) ----------------------------------------

X4 = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
SECOND = {  # d2/dx2 sum(f(x)) at X4 (PyTorch: 0 where sign' appears)
    "abs": (gc.abs, [0, 0, 0, 0]),
    "softsign": (gc.softsign, [-0.25, 2 / 27, -2 / 3.375, 0]),
    "l1_penalty": (lambda t: gc.l1_penalty([t]), [0, 0, 0, 0]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_derivative_through_sign(backend, name):
    fn, want = SECOND[name]
    x = gc.placeholder((4,))
    g = gc.grad(gc.sum(fn(x)), x)
    g2 = gc.grad(gc.sum(g), x)
    close(gc.compile([x], g2, backend=backend)(X4), want)


@needs_torch
def test_second_derivative_through_sign_torch():
    t = torch.tensor(X4, requires_grad=True)
    (g,) = torch.autograd.grad(F.softsign(t).sum(), t, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), t)
    close(g2.numpy(), SECOND["softsign"][1])


# -- C4: the documented signatures -------------------------------------------------------------

API_SIGNATURES = {  # op -> leading parameter names as in API.md
    "add": ["a", "b"], "sub": ["a", "b"], "mul": ["a", "b"], "div": ["a", "b"],
    "pow": ["a", "b"], "neg": ["t"], "matmul": ["a", "b"], "transpose": ["t", "axes"],
    "reshape": ["t", "shape"],
    "exp": ["t"], "log": ["t"], "sqrt": ["t"], "abs": ["t"], "cos": ["t"], "sin": ["t"],
    "square": ["t"], "maximum": ["a", "b"], "minimum": ["a", "b"],
    "where": ["cond", "a", "b"], "greater": ["a", "b"], "less": ["a", "b"], "equal": ["a", "b"],
    "sum": ["t", "axis", "keepdims"], "mean": ["t", "axis", "keepdims"],
    "max": ["t", "axis", "keepdims"], "logsumexp": ["t", "axis", "keepdims"],
    "sigmoid": ["t"], "tanh": ["t"], "relu": ["t"], "leaky_relu": ["t", "alpha"],
    "prelu": ["t", "alpha"], "elu": ["t", "alpha"], "selu": ["t"], "softplus": ["t"],
    "hard_tanh": ["t"], "softsign": ["t"], "silu": ["t"], "swish": ["t"], "mish": ["t"],
    "gelu": ["t", "approximate"], "step": ["t"], "maxout": ["t", "pieces", "axis"],
    "softmax": ["t", "axis"], "log_softmax": ["t", "axis"],
    "mse": ["pred", "target"], "binary_cross_entropy": ["prob", "target"],
    "binary_cross_entropy_with_logits": ["logits", "target"],
    "cross_entropy": ["logits", "labels"], "l1_penalty": ["tensors"],
    "l2_penalty": ["tensors"], "dropout": ["t", "rate", "training", "seed"],
    "batch_norm": ["t", "gamma", "beta", "running_mean", "running_var", "training",
                   "momentum", "eps"],
}
DEFAULTS = {("leaky_relu", "alpha"): 0.01, ("elu", "alpha"): 1.0,
            ("gelu", "approximate"): "none", ("maxout", "axis"): -1, ("softmax", "axis"): -1,
            ("log_softmax", "axis"): -1}


@pytest.mark.parametrize("name", sorted(API_SIGNATURES))
def test_api_signature(name):
    params = inspect.signature(getattr(gc, name)).parameters
    names = list(params)
    assert names[:len(API_SIGNATURES[name])] == API_SIGNATURES[name]
    for n in API_SIGNATURES[name]:
        assert params[n].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, (name, n)
    for (op, p), v in DEFAULTS.items():
        if op == name:
            assert params[p].default == v


def test_activation_parameters_positional_and_keyword():
    x = gc.placeholder((4,))
    a = np.array([-2, -0.5, 0.5, 2], np.float32)
    alpha = gc.constant(np.float32(0.3))
    outs = [gc.leaky_relu(x, 0.2), gc.leaky_relu(t=x, alpha=0.2), gc.leaky_relu(t=x),
            gc.elu(x, 0.5), gc.elu(t=x, alpha=0.5),
            gc.gelu(x, "tanh"), gc.gelu(t=x, approximate="tanh"),
            gc.prelu(x, alpha), gc.prelu(t=x, alpha=alpha),
            gc.where(cond=gc.greater(a=x, b=0.0), a=x, b=0.0), gc.maximum(a=x, b=0.0),
            gc.relu(t=x), gc.softmax(t=x, axis=-1), gc.maxout(t=x, pieces=2, axis=-1)]
    got = gc.compile([x], outs)(a)
    lr = np.where(a > 0, a, 0.2 * a)
    el = np.where(a > 0, a, 0.5 * np.expm1(a))
    ge = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))
    pr = np.where(a > 0, a, 0.3 * a)
    want = [lr, lr, np.where(a > 0, a, 0.01 * a), el, el, ge, ge, pr, pr,
            np.maximum(a, 0), np.maximum(a, 0), np.maximum(a, 0),
            np.exp(a) / np.exp(a).sum(), [-0.5, 2]]
    for g, w in zip(got, want):
        close(g, w, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError):
        gc.relu(x, x)
    with pytest.raises(TypeError):
        gc.leaky_relu(x, beta=0.2)


# -- N1: cross-entropy / softmax at large logits ---------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_softmax_large_logits(backend):
    logits = np.array([[1e4, 1e4, -1e4], [1, 2, 3]], np.float32)
    labels = np.array([0, 2])
    x = gc.placeholder((2, 3))
    y = gc.placeholder((2,), dtype="int64")
    ce, sm, lsm = gc.compile([x, y], [gc.cross_entropy(x, y, reduction="none"), gc.softmax(x),
                                     gc.log_softmax(x)], backend=backend)(logits, labels)
    close(ce, [0.6931472, 0.40760597], rtol=1e-6, atol=0)
    close(sm[0], [0.5, 0.5, 0.0], rtol=1e-6, atol=0)
    close(lsm[0], [-0.6931472, -0.6931472, -20000.693], rtol=1e-6, atol=0)
    if torch is not None:
        close(ce, F.cross_entropy(torch.tensor(logits), torch.tensor(labels),
                                  reduction="none").numpy(), rtol=1e-6, atol=0)


# -- N2: binary cross-entropy at p = 0 and 1 -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_cross_entropy_grad_at_edges(backend):
    p = gc.placeholder((4,))
    t = gc.placeholder((4,))
    loss = gc.binary_cross_entropy(p, t, reduction="sum")
    pv = np.array([0, 1, 0, 1], np.float32)
    tv = np.array([1, 0, 0, 1], np.float32)
    out, gp, gt = gc.compile([p, t], [loss] + gc.grad(loss, [p, t]), backend=backend)(pv, tv)
    # torch: forward clamps log at -100; d/dp = (p - t) / max(p (1 - p), 1e-12);
    # d/dt = log(1 - p) - log(p)
    close(out, 200.0)
    close(gp, [-1e12, 1e12, 0, 0])
    close(gt, [np.inf, -np.inf, np.inf, -np.inf])
    if torch is not None:
        tp = torch.tensor(pv, requires_grad=True)
        tt = torch.tensor(tv, requires_grad=True)
        tl = F.binary_cross_entropy(tp, tt, reduction="sum")
        tgp, tgt = torch.autograd.grad(tl, [tp, tt])
        close(gp, tgp.numpy())
        close(gt, tgt.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_cross_entropy_grad_interior_unchanged(backend):
    p = gc.placeholder((3,))
    t = gc.placeholder((3,))
    loss = gc.binary_cross_entropy(p, t)
    pv = np.array([0.2, 0.5, 0.9], np.float32)
    tv = np.array([0.0, 1.0, 0.3], np.float32)
    gp, gt = gc.compile([p, t], gc.grad(loss, [p, t]), backend=backend)(pv, tv)
    close(gp, (pv - tv) / (pv * (1 - pv)) / 3, rtol=1e-5)
    close(gt, (np.log1p(-pv) - np.log(pv)) / 3, rtol=1e-5)


# -- N3: pow with a tensor exponent at a = 0 -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_tensor_exponent_grad_at_zero(backend):
    a = gc.placeholder((3,))
    b = gc.placeholder((3,))
    ga, gb = gc.grad(gc.sum(gc.pow(a, b)), [a, b])
    av = np.array([0, 0, -2], np.float32)
    bv = np.array([2, 0, 2], np.float32)
    got_a, got_b = gc.compile([a, b], [ga, gb], backend=backend)(av, bv)
    close(got_a, [0, 0, -4])
    close(got_b, [0, 0, np.nan])
    if torch is not None:
        ta = torch.tensor(av, requires_grad=True)
        tb = torch.tensor(bv, requires_grad=True)
        tga, tgb = torch.autograd.grad(torch.pow(ta, tb).sum(), [ta, tb])
        close(got_a, tga.numpy())
        close(got_b, tgb.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_broadcast_grads(backend):
    # the gradient's mask (a == 0 and b >= 0) broadcasts operands of different shapes
    a = gc.placeholder((3, 1))
    b = gc.placeholder((1, 4))
    ga, gb = gc.grad(gc.sum(gc.pow(a, b)), [a, b])
    av = np.array([[0.5], [1.0], [2.0]], np.float32)
    bv = np.array([[0.0, 1.0, 2.0, 0.5]], np.float32)
    got_a, got_b = gc.compile([a, b], [ga, gb], backend=backend)(av, bv)
    close(got_a, (bv * av ** (bv - 1)).sum(1, keepdims=True), rtol=1e-5)
    close(got_b, (av ** bv * np.log(av)).sum(0, keepdims=True), rtol=1e-5, atol=1e-6)


# -- N4: relu(nan) ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_nan(backend):
    x = gc.placeholder((3,))
    y = gc.relu(x)
    g = gc.grad(gc.sum(y), x)
    out, grad = gc.compile([x], [y, g], backend=backend)(np.array([np.nan, -1, 2], np.float32))
    close(out, [np.nan, 0, 2])
    close(grad, [1, 0, 1])  # torch: threshold_backward passes the gradient where not x <= 0


def test_derivative_attr_survives_export():
    p = gc.placeholder((4,), name="p")
    t = gc.placeholder((4,), name="t")
    loss = gc.binary_cross_entropy(p, t, reduction="sum") + gc.sum(gc.pow(p, t))
    inputs, outputs = gc.export.from_json(gc.export.to_json([loss]))
    gp, _ = gc.grad(outputs[0], inputs)
    pv = np.array([0, 1, 0, 1], np.float32)
    tv = np.array([1, 0, 0, 1], np.float32)
    close(gc.compile(inputs, gp)(pv, tv), [-1e12, 1e12, 0, 1])


# -- N5: float scalars SymPy would fold (0.0, nan, inf) keep IEEE semantics --------------------

@pytest.mark.parametrize("backend", ["numpy", C])
def test_zero_and_non_finite_scalars_are_not_folded(backend):
    # 0.0 * x was folded to 0 (torch: nan for x = inf or nan); the gradient of nan * f(x) was 0
    # (torch: nan); x + inf gave inf for x = nan
    x = gc.placeholder((3,), name="x")
    grad_nan = gc.grad(gc.sum(x * x) * float("nan"), [x])[0]
    grad_zero = gc.grad(gc.sum(x * 0.0), [x])[0]
    f = gc.compile([x], [x * 0.0, x + float("inf"), grad_nan, grad_zero], backend=backend)
    got = f(np.array([1.0, np.inf, np.nan], np.float32))
    np.testing.assert_array_equal(got[0], [0.0, np.nan, np.nan])
    np.testing.assert_array_equal(got[1], [np.inf, np.inf, np.nan])
    assert np.isnan(got[2]).all()
    np.testing.assert_array_equal(got[3], [0.0, 0.0, 0.0])
    i = gc.placeholder((2,), dtype="int32", name="i")
    assert (i * 0.0).dtype == "float32"  # a float scalar still makes an int op float32


# -- N6: bool tensors in arithmetic, as in PyTorch ------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C])
def test_bool_tensors_in_arithmetic(backend):
    b = gc.placeholder((3,), dtype="bool", name="b")
    with pytest.raises(TypeError, match="neg: not supported on bool"):
        -b
    with pytest.raises(TypeError, match="sub: not supported on bool"):
        b - b
    outs = [b * 2, b + 1, gc.where(b, 1, 0), gc.exp(b), b + b]
    assert [o.dtype for o in outs] == ["int64", "int64", "int64", "float32", "bool"]
    got = gc.compile([b], outs, backend=backend)(np.array([True, False, True]))
    np.testing.assert_array_equal(got[0], [2, 0, 2])
    np.testing.assert_array_equal(got[1], [2, 1, 2])
    np.testing.assert_array_equal(got[2], [1, 0, 1])
    # the numpy reference computed exp of bools in float16 (2.71875)
    np.testing.assert_allclose(got[3], [np.e, 1.0, np.e], rtol=1e-6)
    np.testing.assert_array_equal(got[4], [True, False, True])
