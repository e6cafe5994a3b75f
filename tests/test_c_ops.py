"""The C backend against the numpy reference for every op (forward and backward), float32 and
float64, plus odd shapes of the fused dense path."""
import numpy as np
import pytest

import graphc as gc
from backend_diff import all_cases, compare_backend
from graphc.errors import BackendUnavailable

try:
    gc.compile([], gc.constant(1.0) * 2, backend="c")
except BackendUnavailable as e:  # pragma: no cover - machines without gcc
    pytest.skip(f"C backend unavailable: {e}", allow_module_level=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_op_matches_numpy(dtype):
    problems = compare_backend("c", all_cases(max_shapes=None if dtype == "float32" else 2),
                               dtype=dtype, chunk=200)
    assert not problems, "\n".join(problems[:30])


ODD_SHAPES = [(1, 1, 1), (1, 3, 17), (3, 17, 1), (17, 33, 100), (100, 3, 33), (33, 100, 130),
              (130, 257, 5)]


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "gelu", "elu", "softplus", "mish"])
def test_dense_layer_odd_shapes(act):
    """relu(x @ W + b)-style layers and their gradients (the fused GEMM epilogue and the fused
    backward) on shapes that are not multiples of any tile; one program holds all shapes."""
    rng = np.random.RandomState(0)
    inputs, feeds, outs = [], [], []
    for n, k, m in ODD_SHAPES:
        x = gc.placeholder((None, k), name=f"x{n}_{k}_{m}")
        W = gc.parameter(rng.randn(k, m).astype("float32") * 0.3, name="W")
        b = gc.parameter(rng.randn(m).astype("float32"), name="b")
        out = getattr(gc, act)(x @ W + b)
        cost = gc.sum(out * gc.constant(rng.randn(n, m).astype("float32")))
        outs += [out] + gc.grad(cost, [x, W, b])
        inputs.append(x)
        feeds.append(rng.randn(n, k).astype("float32"))
    ref = gc.compile(inputs, outs, backend="numpy")(*feeds)
    got = gc.compile(inputs, outs, backend="c")(*feeds)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4 * (1 + np.abs(r).max()))
