"""Session 12: ``gc.optim.AdamW`` (decoupled weight decay) step by step against
``torch.optim.AdamW``, with a number and with a tensor learning rate."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import OPENCL, c_available

BACKENDS = ["numpy"] + (["c"] if c_available() else []) + [OPENCL]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weight_decay,lr_kind", [(0.01, "float"), (0.3, "float"),
                                                  (0.0, "float"), (0.05, "tensor")])
def test_adamw_matches_torch(backend, weight_decay, lr_kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    W0 = rng.standard_normal((6, 4)).astype("float32")
    b0 = rng.standard_normal(4).astype("float32")
    X = rng.standard_normal((9, 6)).astype("float32")
    T = rng.standard_normal((9, 4)).astype("float32")
    x, t = gc.placeholder((None, 6), name="x"), gc.placeholder((None, 4), name="t")
    W, b = gc.parameter(W0, name="W"), gc.parameter(b0, name="b")
    loss = gc.mean((gc.sigmoid(x @ W + b) - t) ** 2)
    lrs = [0.05, 0.05, 0.02, 0.1]
    lr = lrs[0] if lr_kind == "float" else gc.parameter(np.float32(lrs[0]), name="lr",
                                                          trainable=False)
    opt = gc.optim.AdamW(lr, weight_decay=weight_decay)
    f = gc.compile([x, t], loss, updates=opt.updates([W, b], gc.grad(loss, [W, b])),
                   backend=backend)
    tW, tb = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    topt = torch.optim.AdamW([tW, tb], lr=lrs[0], weight_decay=weight_decay)
    for step, value in enumerate(lrs if lr_kind == "tensor" else lrs[:1] * 4):
        if lr_kind == "tensor":
            lr.value = np.float32(value)
            topt.param_groups[0]["lr"] = value
        f(X, T)
        topt.zero_grad()
        torch.mean((torch.sigmoid(torch.tensor(X) @ tW + tb) - torch.tensor(T)) ** 2).backward()
        topt.step()
        np.testing.assert_allclose(W.value, tW.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"W after step {step}")
        np.testing.assert_allclose(b.value, tb.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"b after step {step}")


def test_adamw_by_name_and_defaults():
    opt = gc.optim.get("AdamW", lr=1e-3)
    assert isinstance(opt, gc.optim.AdamW) and opt.weight_decay == 0.01
    assert opt.config() == {"name": "AdamW", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999,
                            "eps": 1e-8, "weight_decay": 0.01, "amsgrad": False}


def test_adamw_zero_decay_is_adam():
    # weight_decay 0: the same updates as Adam (no decay term at all in the graph)
    rng = np.random.default_rng(2)
    W0 = rng.standard_normal((3, 2)).astype("float32")
    X = rng.standard_normal((5, 3)).astype("float32")
    results = []
    for opt in (gc.optim.Adam(0.01), gc.optim.AdamW(0.01, weight_decay=0.0)):
        x = gc.placeholder((None, 3), name="x")
        W = gc.parameter(W0, name="W")
        loss = gc.sum(gc.tanh(x @ W))
        f = gc.compile([x], loss, updates=opt.updates([W], gc.grad(loss, [W])), backend="numpy")
        for _ in range(3):
            f(X)
        results.append(W.value)
    np.testing.assert_array_equal(results[0], results[1])


def test_fit_with_adamw_by_name():
    model = gc.nn.Sequential([gc.nn.Dense(4, activation="relu"), gc.nn.Dense(3)], input_dim=5)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 5)).astype("float32"), rng.integers(0, 3, 32)
    hist = model.fit(X, y, optimizer="adamw", epochs=2, batch_size=8, backend="numpy",
                     progress=False)
    assert len(hist["loss"]) == 2 and np.isfinite(hist["loss"]).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_amsgrad_matches_torch(backend, cls):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    W0 = rng.standard_normal((5, 3)).astype("float32")
    Xs = [rng.standard_normal((7, 5)).astype("float32") * s for s in (1.0, 3.0, 0.2, 0.5, 2.0)]
    x = gc.placeholder((None, 5), name="x")
    W = gc.parameter(W0, name="W")
    loss = gc.mean(gc.tanh(x @ W) ** 2)
    opt = getattr(gc.optim, cls)(0.05, weight_decay=0.02, amsgrad=True)
    f = gc.compile([x], loss, updates=opt.updates([W], gc.grad(loss, [W])), backend=backend)
    tW = torch.tensor(W0, requires_grad=True)
    topt = getattr(torch.optim, cls)([tW], lr=0.05, weight_decay=0.02, amsgrad=True)
    for step, X in enumerate(Xs):  # gradients growing and shrinking: the max of v matters
        f(X)
        topt.zero_grad()
        torch.mean(torch.tanh(torch.tensor(X) @ tW) ** 2).backward()
        topt.step()
        np.testing.assert_allclose(W.value, tW.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"after step {step}")
