"""Review 7: regressions found while reviewing the uniform fold (fusion._fold_uniform), the fused
softmax cross-entropy gradient and shape-only schedule inputs.

The fold evaluates an elementwise node whose inputs are all uniform (fills of its shape,
1-element constants) at lower time into one ``fill_like`` whose value is a float attribute,
rendered through ``sp.Float`` (lower.ew_parts).  Two values did not survive that trip:

* -0.0 (``zeros_like(x) * -1``): sp.Float has no negative zero, the fill wrote +0.0, and
  ``1 / (zeros_like(x) * -1)`` gave +inf on C / OpenCL / CUDA (numpy: -inf);
* int64 beyond 2**53 (``ones_like(x) * (2**53 + 1)``): ``float(value)`` rounded it.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C


def _both(build, feed):
    """Outputs of the numpy reference and the C backend for the graph ``build()`` makes."""
    res = []
    for backend in ("numpy", "c"):
        x, outs = build()
        res.append(gc.compile([x], outs, backend=backend)(feed))
    return res


@pytest.mark.parametrize("backend", [C])
def test_uniform_fold_keeps_negative_zero(backend):
    def build():
        x = gc.placeholder((3, 4), name="x")
        neg0 = gc.zeros_like(x) * -1.0
        return x, [neg0, 1.0 / neg0, 1.0 / (gc.zeros_like(x) - 0.0 * -1.0)]
    ref, got = _both(build, np.ones((3, 4), "float32"))
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)
        assert np.array_equal(np.signbit(g), np.signbit(r))
    assert np.all(np.signbit(got[0])) and np.all(got[1] == -np.inf)


@pytest.mark.parametrize("backend", [C])
def test_uniform_fold_keeps_large_int64_exact(backend):
    big = 2 ** 53 + 1

    def build():
        x = gc.placeholder((2, 3), "int64", name="x")
        return x, [gc.ones_like(x) * big, gc.ones_like(x) * 3037000499 * 3037000499,
                   gc.ones_like(x) * (2 ** 52 + 1)]
    ref, got = _both(build, np.ones((2, 3), "int64"))
    assert int(ref[0][0, 0]) == big
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)


def test_uniform_fold_still_folds_exact_values():
    """The guard leaves the fold of ordinary values alone: the mean's seed 1/N is one fill."""
    from graphc.lower import lower
    x = gc.placeholder((None, 3), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    loss = gc.cross_entropy(x, y)
    f = gc.compile([x, y], gc.grad(loss, x), backend="numpy")
    low = lower(f.program, [(8, 3), (8,)])
    fills = [k.node for k in low.kernels if k.node.op == "fill_like"]
    assert len(fills) == 1 and fills[0].attrs["value"] == pytest.approx(1 / 8)
