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
