"""Regression tests: the OpenCL backend against the numpy reference on cases a differential
review found deviating (each failed before its fix).  Skipped without an OpenCL device."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import OPENCL


def _both(inputs, outputs, feeds, backend):
    ref = gc.compile(inputs, outputs, backend="numpy")(*feeds)
    got = gc.compile(inputs, outputs, backend=backend)(*feeds)
    return ref, got


@pytest.mark.parametrize("backend", [OPENCL])
def test_nested_piecewise_condition_temporaries_compile(backend):
    # sympy.cse hoisted the shared condition (x <= 0) of relu(relu(x)) into a float temporary;
    # OpenCL C rejects a float ?: condition, so the program did not build at all
    x = np.array([[0.0, -0.0, 1.0, -1.0, 0.25, -3.0, 2.0]], np.float32)
    for dtype in ("float32", "float64"):
        p = gc.placeholder(x.shape, dtype=dtype)
        outs = [gc.relu(gc.relu(p)), gc.leaky_relu(gc.hard_tanh(p)),
                gc.relu(gc.hard_tanh(p * 3.0)), gc.selu(p - 0.25), (p + 1.0) * 0.0]
        ref, got = _both([p], outs, [x.astype(dtype)], backend)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", [OPENCL])
def test_tanh_saturates_to_one(backend):
    # PoCL's float tanh gave +-(1 - 2**-24) for large |x|: gelu(x, "tanh") was -3e22 at
    # x = -1e30 (expected -0) and -inf at -inf (expected NaN, as numpy and torch)
    x = np.array([-np.inf, -1e30, -100.0, -20.0, -9.5, 9.5, 20.0, 1e30, np.inf, np.nan],
                 np.float32)
    p = gc.placeholder(x.shape)
    ref, got = _both([p], [gc.gelu(p, approximate="tanh"), gc.tanh(p)], [x], backend)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7)   # NaN positions equal too
    np.testing.assert_array_equal(got[0][:4], [np.nan, 0.0, 0.0, 0.0])
