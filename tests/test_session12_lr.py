"""Session 12: learning-rate schedules without recompiling.  An optimizer's ``lr`` may be a scalar
float tensor (a trainable=False parameter set between steps, a placeholder fed with every call,
or an expression of them); the compiled step reads it at every call, as PyTorch reads
``param_groups[0]["lr"]`` at every ``step()``."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import OPENCL, c_available

BACKENDS = ["numpy"] + (["c"] if c_available() else [])
LRS = [0.1, 0.05, 0.0, 0.2, 0.01]


def _problem(dtype="float32"):
    rng = np.random.default_rng(4)
    W0 = rng.standard_normal((5, 3)).astype(dtype)
    b0 = rng.standard_normal(3).astype(dtype)
    X = rng.standard_normal((8, 5)).astype(dtype)
    T = rng.standard_normal((8, 3)).astype(dtype)
    return W0, b0, X, T


def _graph(W0, b0):
    x = gc.placeholder((None, 5), W0.dtype, name="x")
    t = gc.placeholder((None, 3), W0.dtype, name="t")
    W, b = gc.parameter(W0, name="W"), gc.parameter(b0, name="b")
    loss = gc.mean((gc.tanh(x @ W + b) - t) ** 2)
    return x, t, [W, b], loss, gc.grad(loss, [W, b])


OPTIMIZERS = {
    "sgd": (lambda lr: gc.optim.SGD(lr), lambda torch, ps, lr: torch.optim.SGD(ps, lr=lr)),
    "momentum": (lambda lr: gc.optim.SGD(lr, momentum=0.9, weight_decay=0.01),
                 lambda torch, ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9,
                                                       weight_decay=0.01)),
    "nesterov": (lambda lr: gc.optim.SGD(lr, momentum=0.8, nesterov=True),
                 lambda torch, ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.8, nesterov=True)),
    "adam": (lambda lr: gc.optim.Adam(lr), lambda torch, ps, lr: torch.optim.Adam(ps, lr=lr)),
    "rmsprop": (lambda lr: gc.optim.RMSProp(lr),
                lambda torch, ps, lr: torch.optim.RMSprop(ps, lr=lr, alpha=0.9)),
}


@pytest.mark.parametrize("backend", BACKENDS + [OPENCL])  # OpenCL: the lr re-sent to the device
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameter_lr_schedule_matches_torch(backend, name):
    torch = pytest.importorskip("torch")
    W0, b0, X, T = _problem()
    x, t, params, loss, grads = _graph(W0, b0)
    lr = gc.parameter(np.float32(LRS[0]), name="lr", trainable=False)
    make, make_torch = OPTIMIZERS[name]
    f = gc.compile([x, t], loss, updates=make(lr).updates(params, grads), backend=backend)
    tW = torch.tensor(W0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    opt = make_torch(torch, [tW, tb], LRS[0])
    for step, value in enumerate(LRS):
        lr.value = np.float32(value)
        for group in opt.param_groups:
            group["lr"] = value
        f(X, T)
        opt.zero_grad()
        torch.mean((torch.tanh(torch.tensor(X) @ tW + tb) - torch.tensor(T)) ** 2).backward()
        opt.step()
        np.testing.assert_allclose(params[0].value, tW.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"W after step {step} (lr {value})")
        np.testing.assert_allclose(params[1].value, tb.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"b after step {step} (lr {value})")


def _run_float_lr(backend, lrs, W0, b0, X, T, make=gc.optim.SGD):
    """The reference: one graph (and compiled step) per learning rate, as before tensors."""
    x, t, params, loss, grads = _graph(W0, b0)
    opt = make(lrs[0])
    for value in lrs:
        opt.lr = value
        gc.compile([x, t], loss, updates=opt.updates(params, grads), backend=backend)(X, T)
    return [p.value for p in params]


@pytest.mark.parametrize("backend", BACKENDS + [OPENCL])
def test_placeholder_lr_fed_with_every_call(backend):
    W0, b0, X, T = _problem()
    x, t, params, loss, grads = _graph(W0, b0)
    lr = gc.placeholder((), name="lr")
    f = gc.compile([x, t, lr], loss, updates=gc.optim.SGD(lr, momentum=0.5).updates(params, grads),
                   backend=backend)
    for value in LRS:
        f(X, T, value)
    want = _run_float_lr(backend, LRS, W0, b0, X, T,
                         make=lambda v: gc.optim.SGD(v, momentum=0.5))
    for got, w in zip(params, want):
        np.testing.assert_allclose(got.value, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS + [OPENCL])
def test_lr_expression_of_a_fed_step(backend):
    # exponential decay computed in the graph from a fed step number
    W0, b0, X, T = _problem()
    x, t, params, loss, grads = _graph(W0, b0)
    k = gc.placeholder((), name="k")
    lr = 0.2 * gc.exp(-0.5 * k)
    f = gc.compile([x, t, k], loss, updates=gc.optim.Adam(lr).updates(params, grads),
                   backend=backend)
    for step in range(4):
        f(X, T, float(step))
    lrs = [float(np.float32(0.2) * np.exp(np.float32(-0.5) * np.float32(s))) for s in range(4)]
    want = _run_float_lr(backend, lrs, W0, b0, X, T, make=gc.optim.Adam)
    for got, w in zip(params, want):
        np.testing.assert_allclose(got.value, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_lr_for_a_float64_model(backend):
    W0, b0, X, T = _problem("float64")
    x, t, params, loss, grads = _graph(W0, b0)
    lr = gc.parameter(np.float32(0.125), name="lr", trainable=False)  # exact in both types
    f = gc.compile([x, t], loss, updates=gc.optim.RMSProp(lr).updates(params, grads),
                   backend=backend)
    f(X, T)
    assert params[0].value.dtype == np.float64
    want = _run_float_lr(backend, [0.125], W0, b0, X, T, make=gc.optim.RMSProp)
    for got, w in zip(params, want):
        np.testing.assert_allclose(got.value, w, rtol=1e-12, atol=1e-14)


def test_bad_lr_tensors_are_refused():
    with pytest.raises(ValueError, match=r"SGD: lr must be a number or a scalar float tensor, "
                                         r"got lr with shape \(2,\)"):
        gc.optim.SGD(gc.placeholder((2,), name="lr"))
    with pytest.raises(ValueError, match="scalar float tensor.*int64"):
        gc.optim.Adam(gc.placeholder((), "int64", name="lr"))
    with pytest.raises(ValueError, match="Adam: the learning-rate parameter lr must be "
                                         "trainable=False"):
        gc.optim.Adam(gc.parameter(np.float32(0.1), name="lr"))
    with pytest.raises(ValueError, match="lr must be finite"):
        gc.optim.SGD(float("nan"))


def _model():
    model = gc.nn.Sequential([gc.nn.Dense(4, activation="tanh"), gc.nn.Dense(2)], input_dim=3)
    rng = np.random.default_rng(0)
    return model, rng.standard_normal((16, 3)).astype("float32"), rng.integers(0, 2, 16)


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_fit_with_an_lr_parameter_changes_it_without_rebuilding():
    model, X, y = _model()
    lr = gc.parameter(np.float32(0.0), name="lr", trainable=False)
    opt = gc.optim.SGD(lr)
    before = [w.copy() for w in model.get_weights()]
    model.fit(X, y, optimizer=opt, epochs=1, batch_size=8, backend="c", progress=False)
    for b, w in zip(before, model.get_weights()):  # lr 0: nothing moved
        np.testing.assert_array_equal(b, w)
    step = model._train_cache["entry"]["fns"]["c"]
    lr.value = np.float32(0.5)
    model.fit(X, y, optimizer=opt, epochs=1, batch_size=8, backend="c", progress=False)
    assert model._train_cache["entry"]["fns"]["c"] is step  # the same compiled step
    assert any(not np.array_equal(b, w) for b, w in zip(before, model.get_weights()))


def test_fit_refuses_an_lr_it_cannot_feed():
    model, X, y = _model()
    opt = gc.optim.SGD(0.1 * gc.placeholder((), name="decay"))
    with pytest.raises(ValueError, match=r"fit: the optimizer's lr needs placeholder\(s\) "
                                         r"\['decay'\]"):
        model.fit(X, y, optimizer=opt, epochs=1, backend="numpy", progress=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_lr_schedule_equals_refitting_with_each_rate(backend):
    schedule = [0.2, 0.1, 0.05]
    model, X, y = _model()
    w0 = model.get_weights()
    opt = gc.optim.SGD(0.5, momentum=0.9)
    hist = model.fit(X, y, optimizer=opt, epochs=3, batch_size=8, backend=backend,
                     shuffle=False, progress=False, lr_schedule=lambda e: schedule[e])
    assert hist["lr"] == schedule and len(hist["loss"]) == 3
    assert opt.lr.op == "parameter" and float(opt.lr.value) == np.float32(0.05)
    got = model.get_weights()
    # the reference: one fit per epoch, the optimizer's lr a number set before each
    model.set_weights(w0)
    ref = gc.optim.SGD(0.5, momentum=0.9)
    for rate in schedule:
        ref.lr = rate
        model.fit(X, y, optimizer=ref, epochs=1, batch_size=8, backend=backend, shuffle=False,
                  progress=False)
    for g, w in zip(got, model.get_weights()):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_fit_lr_schedule_sets_a_parameter_lr_in_place():
    model, X, y = _model()
    lr = gc.parameter(np.float32(1.0), name="lr", trainable=False)
    opt = gc.optim.Adam(lr)
    hist = model.fit(X, y, optimizer=opt, epochs=2, batch_size=8, backend="numpy",
                     progress=False, lr_schedule=lambda e: 1e-3 / (e + 1))
    assert opt.lr is lr and float(lr.value) == np.float32(5e-4)
    assert hist["lr"] == [1e-3, 5e-4]


def test_fit_lr_schedule_errors():
    model, X, y = _model()
    with pytest.raises(TypeError, match="lr_schedule must be a function"):
        model.fit(X, y, epochs=1, backend="numpy", progress=False, lr_schedule=0.1)
    with pytest.raises(ValueError, match=r"lr_schedule\(0\) returned nan"):
        model.fit(X, y, optimizer=gc.optim.SGD(0.1), epochs=1, backend="numpy", progress=False,
                  lr_schedule=lambda e: float("nan"))
    with pytest.raises(ValueError, match=r"lr_schedule\(0\) returned 'fast', not a number"):
        model.fit(X, y, optimizer=gc.optim.SGD(0.1), epochs=1, backend="numpy", progress=False,
                  lr_schedule=lambda e: "fast")
    t = gc.parameter(np.float32(0.0), name="t", trainable=False)
    with pytest.raises(ValueError, match="lr_schedule: the optimizer's lr is the expression"):
        model.fit(X, y, optimizer=gc.optim.SGD(0.1 * gc.exp(-t)), epochs=1, backend="numpy",
                  progress=False, lr_schedule=lambda e: 0.1)


def test_parameter_lr_on_the_cuda_backend(fake_cupy):
    # CUDA keeps parameters resident on the device: setting lr.value on the host must reach it
    fake_cupy()
    W0, b0, X, T = _problem()
    results = []
    for backend in ("cuda", "numpy"):
        x, t, params, loss, grads = _graph(W0, b0)
        lr = gc.parameter(np.float32(LRS[0]), name="lr", trainable=False)
        f = gc.compile([x, t], loss, updates=gc.optim.Adam(lr).updates(params, grads),
                       backend=backend)
        for value in LRS:
            lr.value = np.float32(value)
            f(X, T)
        results.append([p.value for p in params])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
