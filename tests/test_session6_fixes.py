"""Fixes of session 6, each with the check that failed before it."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_unsupported_dtype_fails_at_compile_naming_the_node(backend):
    """float16 on C / OpenCL raised TypeError only at the first call (after compile returned)."""
    x = gc.placeholder((3,), "float16", name="half_x")
    with pytest.raises(TypeError, match="float16.*half_x"):
        gc.compile([x], gc.exp(x), backend=backend)
    y = gc.placeholder((3,), name="y")
    with pytest.raises(TypeError, match="float16.*cast"):
        gc.compile([y], gc.cast(y, "float16"), backend=backend)
    # the numpy reference computes it
    f = gc.compile([x], gc.exp(x), backend="numpy")
    assert f(np.ones(3, "float16")).dtype == np.float16
