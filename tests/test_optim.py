"""gc.optim: each optimizer's updates against torch.optim step by step, and by hand."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import c_available as _c_available
from graphc import optim

STEPS = 5


def _problem(seed=0):
    """A small float64 MLP regression: x -> tanh(x W1 + b1) W2 -> mse against t."""
    rng = np.random.default_rng(seed)
    init = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=(4,)) * 0.1,
            "W2": rng.normal(size=(4, 2))}
    X = rng.normal(size=(8, 3))
    T = rng.normal(size=(8, 2))
    return init, X, T


def _graphc_run(opt, init, X, T, backend="numpy", steps=STEPS):
    params = {k: gc.parameter(v, name=k) for k, v in init.items()}
    x = gc.placeholder((None, 3), "float64", name="x")
    t = gc.placeholder((None, 2), "float64", name="t")
    pred = gc.tanh(x @ params["W1"] + params["b1"]) @ params["W2"]
    loss = gc.mse(pred, t)
    ps = list(params.values())
    step = gc.compile([x, t], loss, opt.updates(ps, gc.grad(loss, ps)), backend=backend)
    trace = []
    for _ in range(steps):
        step(X, T)
        trace.append({k: p.value for k, p in params.items()})
    return trace


def _torch_run(make_opt, init, X, T, steps=STEPS):
    torch = pytest.importorskip("torch")
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in init.items()}
    opt = make_opt(list(params.values()))
    x, t = torch.tensor(X), torch.tensor(T)
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        pred = torch.tanh(x @ params["W1"] + params["b1"]) @ params["W2"]
        loss = torch.mean((pred - t) ** 2)
        loss.backward()
        opt.step()
        trace.append({k: p.detach().numpy().copy() for k, p in params.items()})
    return trace


CASES = [
    ("sgd", lambda: optim.SGD(lr=0.1), lambda torch, ps: torch.optim.SGD(ps, lr=0.1)),
    ("sgd_momentum", lambda: optim.SGD(lr=0.1, momentum=0.9),
     lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    ("sgd_nesterov", lambda: optim.SGD(lr=0.05, momentum=0.8, nesterov=True),
     lambda torch, ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)),
    ("sgd_wd", lambda: optim.SGD(lr=0.1, momentum=0.5, weight_decay=0.01),
     lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.01)),
    ("adam", lambda: optim.Adam(lr=0.01), lambda torch, ps: torch.optim.Adam(ps, lr=0.01)),
    ("adam_betas", lambda: optim.Adam(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6),
     lambda torch, ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-6)),
    ("rmsprop", lambda: optim.RMSProp(lr=0.01),
     lambda torch, ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-8)),
    ("rmsprop_rho", lambda: optim.RMSProp(lr=0.003, rho=0.99, eps=1e-6),
     lambda torch, ps: torch.optim.RMSprop(ps, lr=0.003, alpha=0.99, eps=1e-6)),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_step_by_step(name, ours, theirs):
    torch = pytest.importorskip("torch")
    init, X, T = _problem()
    mine = _graphc_run(ours(), init, X, T)
    ref = _torch_run(lambda ps: theirs(torch, ps), init, X, T)
    for step, (a, b) in enumerate(zip(mine, ref)):
        for k in init:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}: {k} after step {step + 1}")
    # the parameters actually moved
    assert not np.allclose(mine[-1]["W1"], init["W1"])


def test_sgd_momentum_by_hand():
    # f(p) = sum(p^2)/2 has gradient p: each step is checkable with pencil and paper
    p = gc.parameter(np.array([1.0, -2.0]), name="p")
    loss = gc.sum(gc.square(p)) * 0.5
    opt = optim.SGD(lr=0.1, momentum=0.9)
    f = gc.compile([], loss, opt.updates([p], gc.grad(loss, [p])))
    w, buf = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(4):
        f()
        g = w.copy()
        buf = 0.9 * buf + g
        w = w - 0.1 * buf
        np.testing.assert_allclose(p.value, w, rtol=1e-12)


def test_plain_sgd_and_nesterov_by_hand():
    p = gc.parameter(np.array([3.0]), name="p")
    loss = gc.sum(gc.square(p)) * 0.5
    f = gc.compile([], loss, optim.SGD(lr=0.5).updates([p], gc.grad(loss, [p])))
    f()
    np.testing.assert_allclose(p.value, [1.5])
    q = gc.parameter(np.array([3.0]), name="q")
    loss = gc.sum(gc.square(q)) * 0.5
    f = gc.compile([], loss,
                   optim.SGD(lr=0.1, momentum=0.5, nesterov=True).updates([q], gc.grad(loss, [q])))
    f()  # buf = 3, step = g + 0.5 buf = 4.5
    np.testing.assert_allclose(q.value, [3.0 - 0.45])


def test_adam_first_step_is_lr_sign():
    # with bias correction, Adam's first step is lr * g / (|g| + eps) ~ lr * sign(g)
    p = gc.parameter(np.array([2.0, -5.0]), name="p")
    loss = gc.sum(gc.square(p))
    opt = optim.Adam(lr=0.1)
    f = gc.compile([], loss, opt.updates([p], gc.grad(loss, [p])))
    f()
    np.testing.assert_allclose(p.value, [1.9, -4.9], rtol=1e-6)


def test_state_is_untrainable_parameters_and_reused():
    p = gc.parameter(np.ones(3, np.float32), name="w")
    loss = gc.sum(gc.square(p))
    opt = optim.Adam()
    ups = opt.updates([p], gc.grad(loss, [p]))
    targets = [u for u, _ in ups]
    assert p in targets
    state = [u for u in targets if u is not p]
    assert {s.name for s in state} >= {"w_m", "w_v"}
    assert all(not s.trainable for s in state)
    again = opt.updates([p], gc.grad(loss, [p]))
    assert {u.id for u, _ in again} == {u.id for u in targets}


def test_bad_arguments():
    with pytest.raises(ValueError):
        optim.SGD(lr=-0.1)  # lr=0 is valid, as in torch.optim (test_review11_fixes T5)
    with pytest.raises(ValueError):
        optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam(beta1=1.0)
    with pytest.raises(ValueError):
        optim.RMSProp(lr=0.1, rho=1.5)
    p = gc.parameter(np.ones(2), name="p")
    with pytest.raises(ValueError):
        optim.SGD(0.1).updates([p], [])
    assert isinstance(optim.get("adam", lr=0.1), optim.Adam)
    with pytest.raises(ValueError):
        optim.get("adagrad")


@pytest.mark.parametrize("make", [
    lambda: optim.SGD(float("inf")), lambda: optim.Adam(lr=float("nan")),
    lambda: optim.SGD(0.1, weight_decay=float("nan")),
    lambda: optim.RMSProp(0.1, weight_decay=float("inf")),
    lambda: optim.Adam(eps=float("nan")), lambda: optim.RMSProp(0.1, eps=-1.0),
    lambda: optim.RMSProp(0.1, eps=float("inf"))])
def test_non_finite_hyperparameters_are_rejected(make):
    # they would turn every weight into NaN at the first step (weight_decay=nan vanished)
    with pytest.raises(ValueError, match="must be finite"):
        make()


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_backends_agree(backend):
    if backend == "c" and not _c_available():
        pytest.skip("backend 'c' unavailable")
    init, X, T = _problem(1)
    init32 = {k: v.astype(np.float32) for k, v in init.items()}
    ref = _graphc_run(optim.Adam(lr=0.01), init, X, T)
    params = {k: gc.parameter(v, name=k) for k, v in init32.items()}
    x = gc.placeholder((None, 3), name="x")
    t = gc.placeholder((None, 2), name="t")
    loss = gc.mse(gc.tanh(x @ params["W1"] + params["b1"]) @ params["W2"], t)
    ps = list(params.values())
    f = gc.compile([x, t], loss, optim.Adam(lr=0.01).updates(ps, gc.grad(loss, ps)),
                   backend=backend)
    for _ in range(STEPS):
        f(X, T)
    for k, p in params.items():
        np.testing.assert_allclose(p.value, ref[-1][k], rtol=1e-4, atol=1e-4)
