"""Shared pytest setup: the tests directory on sys.path (for ``op_cases``), seeded RNGs, and
a ``backend`` fixture the backend suites can parametrize (``numpy`` by default), and OpenCL
builds without PoCL's optimizer (see ``opencl_build_options``)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def rng():
    """A fresh, seeded numpy generator per test (deterministic)."""
    return np.random.default_rng(1234)


@pytest.fixture
def backend():
    """The backend under test; backend suites override it with ``pytest.mark.parametrize``."""
    return "numpy"


# PoCL's LLVM optimizer dominates a cold run: one training step's program takes 10-17 s to build
# optimized and about a tenth of that with -cl-opt-disable (the default suite: 12 min cold).
# The tests check what the generated kernels compute, which the optimizer must not change.  A
# user's GRAPHC_OPENCL_OPTIONS is kept; a test that wants the optimized build deletes the
# variable (test_gpu_backend's Adam training step does: an MLP step stays covered optimized).
USER_OPENCL_OPTIONS = os.environ.get("GRAPHC_OPENCL_OPTIONS")


@pytest.fixture(autouse=True)
def opencl_build_options(monkeypatch):
    if USER_OPENCL_OPTIONS is None:
        monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


@pytest.fixture
def fake_cupy(monkeypatch):
    """Install a ``FakeCupy`` (tests/fake_cupy.py: CUDA launches checked and run on PoCL) as
    ``cupy``, with fresh CUDA device and adapter caches; call it with FakeCupy's options."""
    import graphc.runtime.cuda as cuda_rt
    import graphc.runtime.cuda_backend as cuda_be
    from fake_cupy import FakeCupy

    def install(**kw):
        cp = FakeCupy(**kw)
        monkeypatch.setitem(sys.modules, "cupy", cp)
        monkeypatch.setattr(cuda_rt, "_DEFAULT", None)
        monkeypatch.setattr(cuda_be, "_ADAPTERS", {})
        return cp
    return install
