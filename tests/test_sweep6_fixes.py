"""Fixes from the op sweep (benchmarks/sweep_ops.py), checked against numpy."""
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def _logits(dtype, n=(257, 33)):
    rng = np.random.default_rng(6)
    z = (rng.standard_normal(n) * 6).astype(dtype)
    z[0, :8] = [0.0, -0.0, 90.0, -90.0, 1e-8, -1e-8, 200.0, -200.0]
    return z


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_numpy(dtype, reduction):
    z = _logits(dtype)
    t = np.random.default_rng(1).random(z.shape).astype(dtype)
    zp, tp = gc.placeholder(z.shape, dtype), gc.placeholder(z.shape, dtype)
    loss = gc.binary_cross_entropy_with_logits(zp, tp, reduction=reduction)
    cost = loss if reduction != "none" else gc.sum(loss)
    f = gc.compile([zp, tp], [loss, gc.grad(cost, zp)], backend="c")
    got, g = f(z, t)
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    per = _softplus(z64) - z64 * t64
    ref = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    gref = _sigmoid(z64) - t64
    if reduction == "mean":
        gref = gref / z.size
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol * 10, atol=tol)
    gscale = 1.0 / z.size if reduction == "mean" else 1.0  # sigmoid(z) - t cancels: absolute
    np.testing.assert_allclose(g, gref, rtol=tol * 10, atol=tol * gscale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softplus_extremes_and_nan(dtype):
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.0, -88.0, 1e30, -1e30, 3.0, -3.0]
                 * 3, dtype=dtype)  # 33 elements: vector body and scalar tail
    zp = gc.placeholder(z.shape, dtype)
    f = gc.compile([zp], gc.softplus(zp), backend="c")
    got = f(z)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = _softplus(z.astype(np.float64))
    np.testing.assert_allclose(got, ref.astype(dtype), rtol=1e-6)
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 0.0


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or shutil.which("gcc") is None,
                    reason="checks gcc's x86-64 code")
def test_softplus_loop_calls_no_scalar_fmaxf(tmp_path):
    """gc_softplusf once used fmaxf, which gcc calls out of line without -ffast-math: the
    elementwise loop around it was not vectorized (bce_with_logits 4M elements: 45 ms -> 3 ms)."""
    src = tmp_path / "k.c"
    src.write_text('#include "gc_runtime.h"\n'
                   "void k(const float *x, float *y, long n) {\n"
                   "  #pragma omp simd\n"
                   "  for (long i = 0; i < n; i++) y[i] = gc_softplusf(x[i]);\n}\n")
    asm = subprocess.run(["gcc", "-O3", "-march=x86-64-v3", "-fopenmp", "-std=gnu11",
                          "-fno-math-errno", f"-I{KERNELS}", "-S", "-o", "-", str(src)],
                         capture_output=True, text=True, check=True).stdout
    assert "fmaxf" not in asm


# -- an output that is a view of a computed node is computed into its output slot -------------

def _merge_heads_graph():
    x = gc.placeholder((4, 3, 5, 2), name="x")
    return x, gc.reshape(gc.transpose(x, (0, 2, 1, 3)), (4, 5, 6))


def test_view_output_written_in_place_no_copy():
    x, y = _merge_heads_graph()
    f = gc.compile([x], y, backend="c")
    a = np.random.default_rng(0).standard_normal((4, 3, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(f(a), a.transpose(0, 2, 1, 3).reshape(4, 5, 6))
    assert "copy_out" not in f.source  # merge heads (32,8,128,64): 4.7-8.8 ms -> 0.12-0.19 ms


def test_view_outputs_sharing_a_base_and_the_base_itself():
    x = gc.placeholder((6, 4), name="x")
    b = gc.exp(x) * 2.0
    outs = [gc.reshape(b, (24,)), b, gc.expand_dims(b, 0), gc.reshape(b, (3, 8)), gc.sum(b)]
    f = gc.compile([x], outs, backend="c")
    a = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    ref = np.exp(a) * 2.0
    got = f(a)
    for g, r in zip(got, [ref.reshape(24), ref, ref[None], ref.reshape(3, 8), ref.sum()]):
        np.testing.assert_allclose(g, r, rtol=1e-6)
    # the outputs are distinct arrays
    got[0][:] = 0
    assert got[1].any()


def test_view_output_of_an_update_value_and_of_a_parameter():
    w = gc.parameter(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    x = gc.placeholder((2, 3), name="x")
    new = w - 0.5 * x
    f = gc.compile([x], [gc.reshape(new, (6,)), gc.reshape(w, (3, 2))], updates=[(w, new)],
                   backend="c")
    a = np.ones((2, 3), np.float32)
    o_new, o_w = f(a)
    np.testing.assert_array_equal(o_new, np.arange(6, dtype=np.float32) - 0.5)
    np.testing.assert_array_equal(o_w, np.arange(6, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(w.value, np.arange(6, dtype=np.float32).reshape(2, 3) - 0.5)
    o_new2, o_w2 = f(a)
    np.testing.assert_array_equal(o_new2, np.arange(6, dtype=np.float32) - 1.0)
    np.testing.assert_array_equal(o_w2, (np.arange(6, dtype=np.float32) - 0.5).reshape(3, 2))


def test_view_output_grad_graph_matches_numpy_backend():
    x, y = _merge_heads_graph()
    w = gc.placeholder((6,), name="w")
    z = y * w
    outs = [gc.reshape(z, (20, 6)), gc.reshape(gc.grad(gc.sum(z * z), x), (-1,))]
    a = np.random.default_rng(2).standard_normal((4, 3, 5, 2)).astype(np.float32)
    wv = np.random.default_rng(3).standard_normal(6).astype(np.float32)
    ref = gc.compile([x, w], outs, backend="numpy")(a, wv)
    got = gc.compile([x, w], outs, backend="c")(a, wv)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
