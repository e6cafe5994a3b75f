"""Every op's value and gradient against PyTorch (float64), plus batch norm with running
statistics, maxout, and an MLP's gradient.  Skipped when torch is not installed."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import graphc as gc  # noqa: E402
from op_cases import case_params, placeholders_for, sample_inputs  # noqa: E402


def _torch_values(case, arrays, w):
    idx = case.grad_inputs()
    ts = []
    for i, a in enumerate(arrays):
        t = torch.tensor(a)
        if i in idx:
            t.requires_grad_(True)
        ts.append(t)
    out = case.torch(*ts)
    grads = []
    if idx:
        (out * torch.tensor(w)).sum().backward()
        grads = [ts[i].grad.numpy() if ts[i].grad is not None else np.zeros_like(arrays[i])
                 for i in idx]
    return out.detach().numpy(), grads


@pytest.mark.parametrize("case,shapes", case_params(lambda c: c.torch is not None))
def test_value_and_grad_match_torch(case, shapes):
    arrays = sample_inputs(case, shapes, "float64", seed=5)
    phs = placeholders_for(arrays)
    out = case.build(*phs)
    rng = np.random.default_rng(6)
    w = rng.standard_normal(out.shape) if out.shape else np.asarray(rng.standard_normal())
    idx = case.grad_inputs()
    outs = [out]
    if idx:
        outs += gc.grad(gc.sum(out * gc.constant(w, "float64")), [phs[i] for i in idx])
    got = gc.compile(phs, outs)(*arrays)
    want, want_grads = _torch_values(case, arrays, w)
    np.testing.assert_allclose(got[0], want, rtol=1e-10, atol=1e-12, err_msg="forward")
    for k, g, wg in zip(idx, got[1:], want_grads):
        np.testing.assert_allclose(g, wg, rtol=1e-9, atol=1e-12, err_msg=f"grad of input {k}")


@pytest.mark.parametrize("momentum", [0.1, 0.25])
def test_batch_norm_training_matches_torch(momentum):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((8, 4)) * 2 + 0.5
    gs, bs = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)
    rm0, rv0 = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    x = gc.placeholder((None, 4), "float64", name="x")
    gamma, beta = gc.parameter(gs, name="gamma"), gc.parameter(bs, name="beta")
    rm = gc.parameter(rm0, trainable=False)
    rv = gc.parameter(rv0, trainable=False)
    y = gc.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=momentum)
    wy = rng.standard_normal((8, 4))
    grads = gc.grad(gc.sum(y * wy), [x, gamma, beta])
    f = gc.compile([x], [y] + grads)
    out = f(xs)

    tx = torch.tensor(xs, requires_grad=True)
    tg = torch.tensor(gs, requires_grad=True)
    tb = torch.tensor(bs, requires_grad=True)
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=momentum,
                                        eps=1e-5)
    (ty * torch.tensor(wy)).sum().backward()
    np.testing.assert_allclose(out[0], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(out[1:], (tx, tg, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rm.value, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.value, trv.numpy(), rtol=1e-12)
    # inference with the updated statistics
    xe = rng.standard_normal((3, 4))
    ye = gc.batch_norm(x, gamma, beta, rm, rv, training=False)
    te = torch.nn.functional.batch_norm(torch.tensor(xe), trm, trv, torch.tensor(gs),
                                        torch.tensor(bs), training=False, eps=1e-5)
    np.testing.assert_allclose(gc.compile([x], ye)(xe), te.numpy(), rtol=1e-10)


def test_maxout_matches_torch_reshape_max():
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((5, 12))
    x = gc.placeholder((None, 12), "float64", name="x")
    y = gc.maxout(x, 3)
    g = gc.grad(gc.sum(y * np.arange(4.0)), x)
    out, grad = gc.compile([x], [y, g])(xs)
    tx = torch.tensor(xs, requires_grad=True)
    ty = tx.reshape(5, 4, 3).max(dim=2).values
    (ty * torch.arange(4.0, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(out, ty.detach().numpy())
    np.testing.assert_allclose(grad, tx.grad.numpy())


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "bce_logits"])
def test_mlp_gradient_matches_torch(loss):
    rng = np.random.default_rng(2)
    n, d, h, c = 7, 5, 6, 3
    Xs = rng.standard_normal((n, d))
    Ws = [rng.standard_normal((d, h)) * 0.5, rng.standard_normal((h, h)) * 0.5,
          rng.standard_normal((h, c)) * 0.5]
    bs = [rng.standard_normal(h) * 0.1, rng.standard_normal(h) * 0.1, rng.standard_normal(c) * 0.1]
    labels = rng.integers(0, c, n)
    targets = rng.uniform(0, 1, (n, c))
    X = gc.placeholder((None, d), "float64", name="X")
    W = [gc.parameter(w) for w in Ws]
    B = [gc.parameter(b) for b in bs]
    hid = gc.gelu(X @ W[0] + B[0])
    hid = gc.tanh(hid @ W[1] + B[1])
    logits = hid @ W[2] + B[2]
    if loss == "cross_entropy":
        J = gc.cross_entropy(logits, gc.constant(labels))
    elif loss == "mse":
        J = gc.mse(gc.softmax(logits), targets)
    else:
        J = gc.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    J = J + 0.01 * gc.l2_penalty(W)
    got = gc.compile([X], [J] + gc.grad(J, W + B))(Xs)

    tW = [torch.tensor(w, requires_grad=True) for w in Ws]
    tB = [torch.tensor(b, requires_grad=True) for b in bs]
    F = torch.nn.functional
    th = F.gelu(torch.tensor(Xs) @ tW[0] + tB[0])
    th = torch.tanh(th @ tW[1] + tB[1])
    tl = th @ tW[2] + tB[2]
    if loss == "cross_entropy":
        tJ = F.cross_entropy(tl, torch.tensor(labels))
    elif loss == "mse":
        tJ = F.mse_loss(torch.softmax(tl, -1), torch.tensor(targets))
    else:
        tJ = F.binary_cross_entropy_with_logits(tl, torch.tensor(targets), reduction="sum")
    tJ = tJ + 0.01 * sum((w * w).sum() for w in tW)
    tJ.backward()
    np.testing.assert_allclose(got[0], tJ.item(), rtol=1e-12)
    for g, t in zip(got[1:], tW + tB):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)
