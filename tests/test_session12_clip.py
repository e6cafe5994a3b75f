"""Session 12: ``gc.optim.clip_grad_norm``, gradient clipping by the total norm as
``torch.nn.utils.clip_grad_norm_``, inside the compiled training step."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
from backends import OPENCL, c_available

BACKENDS = ["numpy"] + (["c"] if c_available() else []) + [OPENCL]


def _setup(scale):
    rng = np.random.default_rng(9)
    W0 = (scale * rng.standard_normal((6, 4))).astype("float32")
    b0 = (scale * rng.standard_normal(4)).astype("float32")
    X = rng.standard_normal((10, 6)).astype("float32")
    T = rng.standard_normal((10, 4)).astype("float32")
    return W0, b0, X, T


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, math.inf),
                                                (0.7, 1.0), (0.4, 3.0)])
def test_clipped_sgd_steps_match_torch(backend, max_norm, norm_type):
    torch = pytest.importorskip("torch")
    W0, b0, X, T = _setup(3.0)
    x, t = gc.placeholder((None, 6), name="x"), gc.placeholder((None, 4), name="t")
    W, b = gc.parameter(W0, name="W"), gc.parameter(b0, name="b")
    loss = gc.mean((gc.tanh(x @ W) + b - t) ** 2)
    clipped, total = gc.optim.clip_grad_norm(gc.grad(loss, [W, b]), max_norm, norm_type)
    f = gc.compile([x, t], [loss, total],
                   updates=gc.optim.SGD(0.1, momentum=0.9).updates([W, b], clipped),
                   backend=backend)
    tW, tb = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    opt = torch.optim.SGD([tW, tb], lr=0.1, momentum=0.9)
    for step in range(3):
        _, got_total = f(X, T)
        opt.zero_grad()
        torch.mean((torch.tanh(torch.tensor(X) @ tW) + tb - torch.tensor(T)) ** 2).backward()
        want_total = torch.nn.utils.clip_grad_norm_([tW, tb], max_norm, norm_type)
        opt.step()
        np.testing.assert_allclose(got_total, want_total.item(), rtol=1e-5)
        np.testing.assert_allclose(W.value, tW.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.value, tb.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_without_torch():
    g1 = gc.constant(np.array([3.0, 0.0], "float32"))
    g2 = gc.constant(np.array([[4.0]], "float64"))  # mixed: the norm in float64
    (c1, c2), total = gc.optim.clip_grad_norm([g1, g2], 1.0)
    f = gc.compile([], [c1, c2, total], backend="numpy")
    a, b, n = f()
    assert n.dtype == np.float64 and n == pytest.approx(5.0)
    assert a.dtype == np.float32 and b.dtype == np.float64
    np.testing.assert_allclose(a, [3.0 / (5 + 1e-6), 0.0], rtol=1e-6)
    np.testing.assert_allclose(b, [[4.0 / (5 + 1e-6)]], rtol=1e-12)
    (c1,), _ = gc.optim.clip_grad_norm([g1], 10.0)  # under the limit: unchanged
    np.testing.assert_array_equal(gc.compile([], c1, backend="numpy")(), [3.0, 0.0])


def test_clip_grad_norm_errors():
    g = gc.constant(np.ones(3, "float32"))
    with pytest.raises(ValueError, match="no gradients"):
        gc.optim.clip_grad_norm([], 1.0)
    with pytest.raises(ValueError, match="max_norm must be finite and >= 0, got -1"):
        gc.optim.clip_grad_norm([g], -1)
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        gc.optim.clip_grad_norm([g], 1.0, norm_type=0)
    with pytest.raises(TypeError, match="is int64, not a float"):
        gc.optim.clip_grad_norm([gc.constant(np.ones(3, "int64"))], 1.0)
