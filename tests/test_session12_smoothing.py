"""Session 12: ``cross_entropy(..., label_smoothing=e)`` against PyTorch's, value and gradient,
on every backend and logits layout."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import OPENCL, c_available

BACKENDS = ["numpy"] + (["c"] if c_available() else []) + [OPENCL]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 5), (5,), (3, 4, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_label_smoothing_matches_torch(backend, shape, reduction, eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    Z = (3 * rng.standard_normal(shape)).astype("float32")
    C = shape[0] if len(shape) == 1 else shape[1]
    lshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    Y = rng.integers(0, C, lshape)
    z = gc.placeholder(shape, name="z")
    y = gc.placeholder(lshape, "int64", name="y")
    loss = gc.cross_entropy(z, y, reduction=reduction, label_smoothing=eps)
    (gz,) = gc.grad(gc.sum(loss * loss), [z])  # a non-uniform upstream gradient for "none"
    got, got_g = gc.compile([z, y], [loss, gz], backend=backend)(Z, Y)
    tz = torch.tensor(Z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tz, torch.tensor(Y), reduction=reduction,
                                           label_smoothing=eps)
    (tl * tl).sum().backward()
    np.testing.assert_allclose(got, tl.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_g, tz.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_label_smoothing_check_grad_and_errors():
    rng = np.random.default_rng(1)
    z = gc.placeholder((4, 3), "float64", name="z")
    y = gc.placeholder((4,), "int64", name="y")
    gc.check_grad(gc.cross_entropy(z, y, label_smoothing=0.2), z,
                  {z: rng.standard_normal((4, 3)), y: np.array([0, 2, 1, 2])})
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        gc.cross_entropy(z, y, label_smoothing=1.5)
    # 0 is the plain op (the fused softmax cross-entropy, nothing added)
    plain = gc.cross_entropy(z, y)
    assert gc.cross_entropy(z, y, label_smoothing=0.0).op == plain.op
