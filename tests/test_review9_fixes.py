"""Review 9 (adversarial, of the GEMM core object, reductions with prologues, transposes /
bmm and review 8's changes): regressions.

* F1 the numpy backend raised OverflowError for an integer op with a literal equal to its
  dtype's minimum: ``int8 x + (-128)`` (and ``x - 128``, ``-128 - x``, ``i32 + 2**31`` once
  review 8 wrapped 2**31 to -2**31) printed as ``a0 - 128``, and 128 is not an int8 (NumPy's
  NEP 50 rules).  The C backend gave the wrapped values.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C


@pytest.mark.parametrize("backend", ["numpy", C])
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_f1_integer_literal_at_the_dtype_minimum(backend, dtype):
    lo = int(np.iinfo(dtype).min)
    x = gc.placeholder((3,), dtype, name="x")
    y = gc.placeholder((3,), dtype, name="y")
    xs, ys = np.array([1, -2, 3], dtype), np.array([2, 5, -7], dtype)
    outs = [x + lo, x - lo, lo - x, x + (-lo), gc.maximum(x, lo), x * lo + y * lo]
    got = gc.compile([x, y], outs, backend=backend)(xs, ys)
    w = np.array(lo, dtype)
    with np.errstate(over="ignore"):
        want = [xs + w, xs - w, w - xs, xs + w, np.maximum(xs, w), xs * w + ys * w]
    for g, e in zip(got, want):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


def test_f1_printed_form_keeps_negative_literals_whole():
    import inspect

    import sympy as sp

    from graphc.symbolic import A, numpy_function
    f = numpy_function(A[0] + sp.Integer(-128) * A[1] + sp.Integer(-128), 2)
    a = np.array([1, 2], "int8")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(f(a, a), a + np.int8(-128) * a + np.int8(-128))
    assert "- 128" not in inspect.getsource(f)
