"""Which backends can run on this machine, as pytest parameters shared by the test modules."""
import functools

import pytest

import graphc as gc
from graphc.errors import BackendUnavailable


@functools.lru_cache(maxsize=None)
def c_available() -> bool:
    try:
        gc.compile([], gc.constant(1.0), backend="c")
        return True
    except BackendUnavailable:
        return False


@functools.lru_cache(maxsize=None)
def opencl_available() -> bool:
    try:
        from graphc.runtime.opencl_backend import default_adapter
        default_adapter()
        return True
    except BackendUnavailable:
        return False


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    try:
        from graphc.runtime.cuda_backend import default_adapter
        default_adapter()
        return True
    except Exception:  # BackendUnavailable, or a CuPy without a working driver
        return False


C = pytest.param("c", marks=pytest.mark.skipif(not c_available(), reason="no C compiler"))
OPENCL = pytest.param("opencl", marks=[
    pytest.mark.opencl, pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")])
CUDA = pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")])


def call_from_threads(fn, threads: int, calls: int) -> list:
    """Call ``fn()`` ``calls`` times in each of ``threads`` threads at once; the exceptions
    raised (empty when every call succeeded)."""
    import threading
    errors: list = []

    def work():
        try:
            for _ in range(calls):
                fn()
        except Exception as e:  # noqa: BLE001 -- returned to the test
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def reductions_hosting_updates(batch=None):
    """The graph of the tests on reductions that host in-place updates (C and GPU): a column
    sum (p, m), a mean (q), a logsumexp (r), a max across rows (t), and a sum that reads its own
    parameter at other indices (s: must host nothing).  Returns (rng, X, g, updates)."""
    import numpy as np

    rng = np.random.RandomState(5)
    X = gc.placeholder((batch, 3), name="X")
    p, q, r, s = (gc.parameter(rng.randn(3).astype("float32"), name=n) for n in "pqrs")
    m = gc.parameter(np.zeros(3, "float32"), name="m")
    t = gc.parameter(rng.randn(5).astype("float32"), name="t")
    g = gc.sum(X * X, axis=0)
    updates = [(p, p - 0.1 * g), (m, 0.9 * m + g), (q, q + gc.mean(X, axis=0) * q),
               (r, gc.logsumexp(X, axis=0) - r), (t, t + gc.max(X, axis=1)),
               (s, s * 0.5 + gc.sum(gc.reshape(s, (3, 1)), axis=1))]
    return rng, X, g, updates

