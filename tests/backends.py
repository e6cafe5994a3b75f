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
