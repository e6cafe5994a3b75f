"""Seeded random graphs (tests/fuzz_graphs.py) compiled on backend "c" (and "opencl") against
the numpy reference: fusion (dense epilogues, batched matmuls, bmm with transposes), lowering
folds (optimizer updates in the gradient's kernel, softmax cross-entropy, maxout, reduction
prologues, scalar nodes grouped per dtype, in-place parameter updates) and the arena plan.
Each case runs three calls and compares every output of every call and every parameter
(optimizer state included) afterwards."""
import warnings

import numpy as np
import pytest

import graphc as gc
from fuzz_graphs import build_case, compare, diverged, run_case

FAST_SEEDS = list(range(0, 40))
SLOW_SEEDS = list(range(40, 600))
OPENCL_SEEDS = list(range(560, 566))


def _check(seed, backend):
    case = build_case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = run_case(case, "numpy")
        if diverged(ref):  # the random graph overflowed in float32 on the reference
            return
        got = run_case(case, backend)
        problems = compare(case, ref, got)
    assert not problems, f"seed {seed}: {problems[:5]}\n{case.desc}"


def test_fuzz_cases_are_nontrivial():
    # the generator builds graphs with gradients and updates, not just a lone placeholder
    cases = [build_case(s) for s in FAST_SEEDS]
    assert sum(bool(c.updates) for c in cases) >= len(cases) // 2
    assert sum(len(c.outputs) > 1 for c in cases) >= len(cases) // 2


def test_fuzz_is_deterministic():
    a, b = build_case(7), build_case(7)
    assert a.desc == b.desc
    assert all((x == y).all() for x, y in zip(a.feeds[0], b.feeds[0]))


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_fuzz_c(seed):
    _check(seed, "c")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_fuzz_c_slow(seed):
    _check(seed, "c")


@pytest.mark.slow
@pytest.mark.parametrize("seed", OPENCL_SEEDS)
def test_fuzz_opencl_slow(seed):
    try:
        _check(seed, "opencl")
    except gc.BackendUnavailable as e:  # pragma: no cover - no pyopencl/PoCL on this machine
        pytest.skip(str(e))


def test_rows_product_epilogue_reading_a_batched_matmul():
    # seed 1387: the ew epilogue of a rows product x (b, t, K) @ W (K, N) also read a batched
    # product x @ B (b, K, N); fuse_dense made that batched matmul a 2-D dense (ShapeError
    # "dense: needs 2-D operands" at the first call on backend c)
    rng = np.random.default_rng(0)
    x = gc.placeholder((2, 3, 4), name="x")
    W = gc.parameter(rng.standard_normal((4, 5)).astype(np.float32))
    B = gc.parameter(rng.standard_normal((2, 4, 5)).astype(np.float32))
    out = gc.tanh(x @ W + x @ B)
    gW, gB = gc.grad(gc.sum(out * out), [W, B])
    xv = rng.standard_normal((2, 3, 4)).astype(np.float32)
    ref = gc.compile([x], [out, gW, gB], backend="numpy")(xv)
    got = gc.compile([x], [out, gW, gB], backend="c")(xv)
    xt = np.tanh(xv @ W.value + xv @ B.value)
    np.testing.assert_allclose(ref[0], xt, rtol=1e-5, atol=1e-6)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
