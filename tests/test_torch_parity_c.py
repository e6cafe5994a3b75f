"""The C backend in float32 against PyTorch in float32 (review 8): special values (NaN, +-inf,
-0.0, huge and tiny magnitudes) through activations, reductions and losses, forward and the
gradient of sum(out * w); reductions and softmax on odd shapes; every optimizer option against
``torch.optim`` for several steps; ``Sequential.fit`` against a PyTorch loop.

Signed zeros are not compared (assert_allclose treats -0.0 == 0.0).  Known, deliberate or
PyTorch-side differences left out (see the review report):

* gelu(+inf) is +inf here, NaN in PyTorch (its erf form computes inf * 0); gelu(3.4e38) is
  3.4e38 here, inf in PyTorch (an intermediate overflows);
* gradients at NaN of elu, selu and hard_tanh: PyTorch's CPU kernels give the incoming
  gradient (its formula: ``x <= 0 ? ... : grad``) in their scalar loop but NaN (elu, selu) or 0
  (hard_tanh) in their vectorized loop, which one depending on the tensor's length and the CPU
  (AVX512: elu from 32 elements, hardtanh from 16).  graphc follows the formula; these tests
  take PyTorch's values element by element (one-element tensors: the scalar loop);
* leaky_relu(-inf, alpha=0.0) is 0 here, NaN in PyTorch (alpha * x with alpha = 0 folds to
  0 when the graph is built; NaN itself stays NaN);
* softmax / log_softmax / cross_entropy of a row holding +inf (handled elsewhere).

Skipped when torch is not installed or there is no C compiler.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import graphc as gc  # noqa: E402
from backends import c_available  # noqa: E402

pytestmark = pytest.mark.skipif(not c_available(), reason="no C compiler")

NAN, INF = np.nan, np.inf
SPECIAL = np.array([NAN, INF, -INF, -0.0, 0.0, 1e30, -1e30, 1e-30, -1e-30, 88.0, -88.0, 100.0,
                    -100.0, 20.0, -20.0, 1e-45, 3.4e38, -3.4e38, 0.5, -0.5, 17.0, -17.0, 1e-4,
                    -1e-4], np.float32)


def close(got, want, rtol=1e-5, atol=1e-6, msg=""):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=rtol, atol=atol, equal_nan=True, err_msg=msg)


ACTIVATIONS = {
    "sigmoid": (gc.sigmoid, torch.sigmoid),
    "tanh": (gc.tanh, torch.tanh),
    "relu": (gc.relu, torch.relu),
    "leaky_relu": (gc.leaky_relu, F.leaky_relu),
    "leaky_relu(0.0)": (lambda t: gc.leaky_relu(t, 0.0), lambda t: F.leaky_relu(t, 0.0)),
    "elu": (gc.elu, F.elu),
    "elu(0.5)": (lambda t: gc.elu(t, 0.5), lambda t: F.elu(t, 0.5)),
    "selu": (gc.selu, F.selu),
    "softplus": (gc.softplus, F.softplus),
    "hard_tanh": (gc.hard_tanh, F.hardtanh),
    "softsign": (gc.softsign, F.softsign),
    "silu": (gc.silu, F.silu),
    "mish": (gc.mish, F.mish),
    "gelu": (gc.gelu, F.gelu),
    "gelu(tanh)": (lambda t: gc.gelu(t, approximate="tanh"),
                   lambda t: F.gelu(t, approximate="tanh")),
    "exp": (gc.exp, torch.exp),
    "log": (gc.log, torch.log),
    "sqrt": (gc.sqrt, torch.sqrt),
    "abs": (gc.abs, torch.abs),
    "square": (gc.square, torch.square),
    "sin": (gc.sin, torch.sin),
    "cos": (gc.cos, torch.cos),
    "neg": (gc.neg, torch.neg),
    "prelu": (lambda t: gc.prelu(t, gc.constant(np.float32(0.25))),
              lambda t: F.prelu(t, torch.tensor([0.25]))),
}


def _special_inputs(name):
    x = SPECIAL
    if name.startswith("gelu"):  # see the module docstring
        x = x[np.abs(x) < np.float32(1e38)]
    if name == "leaky_relu(0.0)":  # 0 * -inf: PyTorch NaN, graphc 0 (see the docstring)
        x = x[x != -INF]
    return x


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_special_values_match_torch(name):
    g_op, t_op = ACTIVATIONS[name]
    xv = _special_inputs(name)
    w = np.linspace(-1.0, 2.0, xv.size).astype(np.float32)
    x = gc.placeholder(xv.shape, name="x")
    y = g_op(x)
    grad = gc.grad(gc.sum(y * gc.constant(w)), x)
    out, got_grad = gc.compile([x], [y, grad], backend="c")(xv)
    want, want_grad = [], []
    for xi, wi in zip(xv, w):  # one element at a time: see the module docstring
        tx = torch.tensor([xi], requires_grad=True)
        ty = t_op(tx)
        (ty * torch.tensor([wi])).sum().backward()
        want.append(ty.item())
        want_grad.append(tx.grad.item())
    close(out, want, msg=f"{name} forward")
    close(got_grad, want_grad, rtol=1e-5, atol=1e-5, msg=f"{name} gradient")


NONFINITE = np.array([[1.0, NAN, 3.0, 0.5], [INF, -INF, 2.0, 0.0], [-1.0, -2.0, -3.0, -4.0],
                      [NAN, INF, -INF, 1.0], [-INF, -INF, -INF, -INF], [1e38, 1e38, -1e38, 0.0],
                      [2.0, 2.0, 1.0, 2.0]], np.float32)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "logsumexp"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, True), (1, False), (-1, True)])
def test_reductions_of_non_finite_values_match_torch(op, axis, keepdims):
    x = gc.placeholder(NONFINITE.shape, name="x")
    y = getattr(gc, op)(x, axis=axis, keepdims=keepdims)
    w = np.arange(1, 1 + int(np.prod(y.shape))).reshape(y.shape).astype(np.float32)
    g = gc.grad(gc.sum(y * gc.constant(w)), x)
    out, grad = gc.compile([x], [y, g], backend="c")(NONFINITE)
    tx = torch.tensor(NONFINITE, requires_grad=True)
    fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax,
          "logsumexp": torch.logsumexp}[op]
    dims = (0, 1) if axis is None else axis
    ty = fn(tx, dim=dims, keepdim=keepdims)
    (ty * torch.tensor(w)).sum().backward()
    close(out, ty.detach().numpy(), msg="forward")
    close(grad, tx.grad.numpy(), msg="gradient")


@pytest.mark.parametrize("op", ["maximum", "minimum", "where", "greater", "less", "equal"])
def test_binary_ops_with_nan_match_torch(op):
    a_ = np.array([NAN, 1.0, NAN, -INF, INF, 2.0, -0.0, 3.0], np.float32)
    b_ = np.array([1.0, NAN, NAN, INF, -INF, 2.0, 0.0, -3.0], np.float32)
    c_ = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
    a, b = gc.placeholder((8,), name="a"), gc.placeholder((8,), name="b")
    cond = gc.placeholder((8,), "bool", name="cond")
    ta, tb = torch.tensor(a_, requires_grad=True), torch.tensor(b_, requires_grad=True)
    if op == "where":
        y, ty = gc.where(cond, a, b), torch.where(torch.tensor(c_), ta, tb)
    elif op in ("maximum", "minimum"):
        y, ty = getattr(gc, op)(a, b), getattr(torch, op)(ta, tb)
    else:
        y = getattr(gc, op)(a, b)
        ty = {"greater": torch.gt, "less": torch.lt, "equal": torch.eq}[op](ta, tb)
    outs = [y]
    if y.dtype != "bool":
        outs += gc.grad(gc.sum(y * np.arange(1.0, 9.0, dtype=np.float32)), [a, b])
        (ty * torch.arange(1.0, 9.0)).sum().backward()
    got = gc.compile([a, b, cond], outs, backend="c")(a_, b_, c_)
    np.testing.assert_array_equal(got[0], ty.detach().numpy())
    if y.dtype != "bool":
        close(got[1], ta.grad.numpy(), msg="gradient of a")
        close(got[2], tb.grad.numpy(), msg="gradient of b")


def test_losses_with_special_values_match_torch():
    logits = np.array([[0.0, 1.0, 2.0], [-INF, 0.0, 1.0], [0.0, -INF, 1.0], [1e30, -1e30, 0.0],
                       [NAN, 0.0, 1.0], [-INF, -INF, 0.0], [100.0, 0.0, -100.0]], np.float32)
    labels = np.array([1, 1, 0, 1, 0, 2, 2])
    xl = np.array([INF, -INF, NAN, 1e30, -1e30, 100.0, -100.0, 0.0, -0.0, 20.0, -20.0],
                  np.float32)
    tl = np.array([1, 0, 1, 0.5, 0.5, 0, 1, 0.5, 1, 0.3, 0.7], np.float32)
    prob = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30, 1 - 1e-7, 0.9, 0.3], np.float32)
    tp = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 0.7], np.float32)
    L, Y = gc.placeholder(logits.shape, name="L"), gc.placeholder((7,), "int64", name="Y")
    X, T = gc.placeholder(xl.shape, name="X"), gc.placeholder(tl.shape, name="T")
    P, TP = gc.placeholder(prob.shape, name="P"), gc.placeholder(tp.shape, name="TP")
    outs = []
    for red in ("none", "sum"):
        ce = gc.cross_entropy(L, Y, reduction=red)
        bl = gc.binary_cross_entropy_with_logits(X, T, reduction=red)
        bc = gc.binary_cross_entropy(P, TP, reduction=red)
        outs += [ce, bl, bc, gc.grad(gc.sum(ce), L)] + gc.grad(gc.sum(bl), [X, T]) \
            + gc.grad(gc.sum(bc), [P, TP])
    got = gc.compile([L, Y, X, T, P, TP], outs, backend="c")(logits, labels, xl, tl, prob, tp)
    k = 0
    for red in ("none", "sum"):
        t = [torch.tensor(a, requires_grad=a.dtype == np.float32)
             for a in (logits, labels, xl, tl, prob, tp)]
        ce = F.cross_entropy(t[0], t[1], reduction=red)
        bl = F.binary_cross_entropy_with_logits(t[2], t[3], reduction=red)
        bc = F.binary_cross_entropy(t[4], t[5], reduction=red)
        (ce.sum() + bl.sum() + bc.sum()).backward()
        want = [ce, bl, bc, t[0].grad, t[2].grad, t[3].grad, t[4].grad, t[5].grad]
        for name, w in zip(("ce", "bce_logits", "bce", "d ce/dL", "d bcel/dX", "d bcel/dT",
                            "d bce/dP", "d bce/dT"), want):
            close(got[k], w.detach().numpy(), rtol=1e-5, atol=1e-5, msg=f"{name} ({red})")
            k += 1


ODD_SHAPES = [(1,), (17,), (3, 17), (33, 1), (1, 129), (2, 17, 33), (5, 129, 3)]


@pytest.mark.parametrize("shape", ODD_SHAPES, ids=str)
def test_odd_shape_reductions_and_softmax_match_torch(shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    xv = rng.standard_normal(shape).astype(np.float32)
    x = gc.placeholder(shape, name="x")
    nd = len(shape)
    builders = []
    for op, t_op in (("sum", torch.sum), ("mean", torch.mean), ("max", torch.amax),
                     ("logsumexp", torch.logsumexp)):
        for axis in [None, -1, 0] + ([(0, nd - 1)] if nd > 1 else []):
            for keep in (False, True):
                dims = tuple(range(nd)) if axis is None else axis
                builders.append((lambda t, op=op, a=axis, k=keep: getattr(gc, op)(
                    t, axis=a, keepdims=k),
                    lambda t, f=t_op, d=dims, k=keep: f(t, dim=d, keepdim=k)))
    for axis in range(-nd, nd):
        builders.append((lambda t, a=axis: gc.softmax(t, axis=a),
                         lambda t, a=axis: torch.softmax(t, a)))
        builders.append((lambda t, a=axis: gc.log_softmax(t, axis=a),
                         lambda t, a=axis: torch.log_softmax(t, a)))
    outs, wants = [], []
    for g_op, t_op in builders:
        y = g_op(x)
        w = rng.standard_normal(y.shape).astype(np.float32)
        outs += [y, gc.grad(gc.sum(y * gc.constant(w)), x)]
        tx = torch.tensor(xv, requires_grad=True)
        ty = t_op(tx)
        (ty * torch.tensor(w)).sum().backward()
        wants += [ty.detach().numpy(), tx.grad.numpy()]
    got = gc.compile([x], outs, backend="c")(xv)
    for i, (g, w) in enumerate(zip(got, wants)):
        assert g.shape == w.shape, (i, g.shape, w.shape)
        close(g, w, rtol=1e-4, atol=1e-5, msg=f"output {i}")


# -- optimizers against torch.optim ------------------------------------------------------------

OPTIMIZERS = [
    ("SGD", dict(lr=0.1), dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.01),
     dict(lr=0.05, momentum=0.5, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, weight_decay=0.1), dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.01), dict(lr=0.01)),
    ("Adam", dict(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-3, weight_decay=0.1),
     dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, beta1=0.0, beta2=0.0, eps=0.0),
     dict(lr=0.01, betas=(0.0, 0.0), eps=0.0)),
    ("RMSProp", dict(lr=0.01), dict(lr=0.01, alpha=0.9)),  # API: rho=0.9 by default
    ("RMSProp", dict(lr=0.01, rho=0.5, eps=1e-4, weight_decay=0.05),
     dict(lr=0.01, alpha=0.5, eps=1e-4, weight_decay=0.05)),
]


@pytest.mark.parametrize("name,gkw,tkw", OPTIMIZERS,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in g.items())}"
                              for n, g, _ in OPTIMIZERS])
def test_optimizer_steps_match_torch_optim(name, gkw, tkw):
    rng = np.random.default_rng(0)
    n, d, h, c = 17, 5, 33, 3
    Xv = rng.standard_normal((n, d)).astype(np.float32)
    yv = rng.integers(0, c, n)
    W0 = [rng.standard_normal((d, h)).astype(np.float32) * 0.4,
          rng.standard_normal(h).astype(np.float32) * 0.1,
          rng.standard_normal((h, c)).astype(np.float32) * 0.4,
          rng.standard_normal(c).astype(np.float32) * 0.1,
          rng.standard_normal((1, 1)).astype(np.float32)]
    x = gc.placeholder((None, d), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    P = [gc.parameter(w.copy(), name=f"p{i}") for i, w in enumerate(W0)]
    J = gc.cross_entropy(gc.tanh(x @ P[0] + P[1]) @ P[2] + P[3] * P[4], y)
    opt = getattr(gc.optim, name)(**gkw)
    step = gc.compile([x, y], J, updates=opt.updates(P, gc.grad(J, P)), backend="c")
    TP = [torch.tensor(w.copy(), requires_grad=True) for w in W0]
    topt = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam,
            "RMSProp": torch.optim.RMSprop}[name](TP, **tkw)
    for s in range(6):
        loss = step(Xv, yv)
        topt.zero_grad()
        tl = F.cross_entropy(torch.tanh(torch.tensor(Xv) @ TP[0] + TP[1]) @ TP[2] + TP[3] * TP[4],
                             torch.tensor(yv))
        tl.backward()
        topt.step()
        close(loss, tl.item(), rtol=1e-5, msg=f"loss at step {s}")
        for i, (p, tp) in enumerate(zip(P, TP)):
            close(p.value, tp.detach().numpy(), rtol=1e-4, atol=1e-5,
                  msg=f"parameter {i} after step {s}")


@pytest.mark.parametrize("loss,act,opt", [
    pytest.param("cross_entropy", None, "sgd", marks=pytest.mark.slow),
    pytest.param("cross_entropy", "softmax", "adam", marks=pytest.mark.slow),
    ("mse", None, "rmsprop")])
def test_fit_matches_a_torch_loop(loss, act, opt):
    """fit without shuffling, a final partial batch, weight decay on the weight matrices."""
    rng = np.random.default_rng(0)
    n, wd = 103, (0.01 if opt == "adam" else 0.0)
    X = rng.standard_normal((n, 7)).astype(np.float32)
    y = rng.integers(0, 4, n) if loss == "cross_entropy" else \
        rng.standard_normal((n, 4)).astype(np.float32)
    gopt, topt = {
        "sgd": (gc.optim.SGD(0.1, momentum=0.9, nesterov=True),
                lambda p: torch.optim.SGD(p, 0.1, momentum=0.9, nesterov=True)),
        "adam": (gc.optim.Adam(0.01), lambda p: torch.optim.Adam(p, 0.01)),
        "rmsprop": (gc.optim.RMSProp(0.01), lambda p: torch.optim.RMSprop(p, 0.01, alpha=0.9)),
    }[opt]
    m = gc.nn.Sequential([gc.nn.Dense(17, "tanh"), gc.nn.Dense(4, act)], input_dim=7)
    W0 = m.get_weights()
    hist = m.fit(X, y, loss=loss, optimizer=gopt, epochs=2, batch_size=25, backend="c",
                 progress=False, shuffle=False, weight_decay=wd)
    TP = [torch.tensor(w, requires_grad=True) for w in W0]
    to = topt(TP)
    losses = []
    for _ in range(2):
        total = 0.0
        for i in range(0, n, 25):
            xb = torch.tensor(X[i:i + 25])
            out = torch.tanh(xb @ TP[0] + TP[1]) @ TP[2] + TP[3]
            yb = torch.tensor(y[i:i + 25])
            data = F.cross_entropy(out, yb) if loss == "cross_entropy" else F.mse_loss(out, yb)
            total_loss = data + wd / 2 * ((TP[0] ** 2).sum() + (TP[2] ** 2).sum())
            to.zero_grad()
            total_loss.backward()
            to.step()
            total += data.item() * len(xb)
        losses.append(total / n)
    close(hist["loss"], losses, rtol=1e-5)
    for w, tw in zip(m.get_weights(), TP):
        close(w, tw.detach().numpy(), rtol=1e-4, atol=1e-5)
    # predict in batches of another size, a final partial batch, and evaluate
    p1 = m.predict(X, batch_size=40, backend="c")
    p2 = m.predict(X, batch_size=1000, backend="c")
    tout = torch.tanh(torch.tensor(X) @ TP[0] + TP[1]) @ TP[2] + TP[3]
    if act == "softmax":
        tout = torch.softmax(tout, -1)
    close(p1, tout.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(p1, p2)
