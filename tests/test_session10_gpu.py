"""Session 10, GPU backends: GEMMs past CUDA's grid-y limit, and launch failures that name the
kernel, its graph node, grid, block and arguments.

* The GEMM template (kernels/gc_gpu_gemm.h) puts row tiles on grid y, whose extent CUDA caps at
  65535: a dense layer over more than 65535 * 128 rows (a batch of 10 million) was refused.  Now
  ``gpu_common.gemm_launch_geometry`` caps grid y at ``GEMM_MAX_ROW_GROUPS`` and the template
  loops over the remaining row tiles (grid-stride over y), one kernel body for CUDA and OpenCL.
  The tests lower the cap to 2 or 3, so a small GEMM runs many row tiles per group (on PoCL, and
  through fake_cupy with its grid-y limit lowered to match), and check the real geometry of a
  10,000,000-row layer without running it.
* A launch the device refuses (or a fault reported at the next synchronization) raised CuPy's
  raw error; it is now ``graphc.errors.KernelLaunchError`` (a RuntimeError) with the context and
  the device's exception chained.
"""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import graphc as gc
import fake_cupy as fake_cupy_module
from fake_cupy import FakeCupy
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.runtime import gpu_common
from graphc.runtime.gpu_common import gemm_launch_geometry
from graphc.runtime.opencl import opencl_available

needs_ocl = pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")
INT_MAX = 2 ** 31 - 1


@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


@pytest.fixture
def fake_cupy(monkeypatch):
    """Install a FakeCupy as ``cupy`` (fresh CUDA device and adapter caches)."""
    import graphc.runtime.cuda as cuda_rt
    import graphc.runtime.cuda_backend as cuda_be

    def install(**kw):
        cp = FakeCupy(**kw)
        monkeypatch.setitem(sys.modules, "cupy", cp)
        monkeypatch.setattr(cuda_rt, "_DEFAULT", None)
        monkeypatch.setattr(cuda_be, "_ADAPTERS", {})
        return cp
    return install


# -- GEMMs with more row tiles than grid y holds -------------------------------------------------

def _gemm_program():
    """Every GEMM flavour with many row tiles: a dense + bias + relu (epilogue), its gradients
    (trans_b: dX = g @ W^T over the batch rows; trans_a: dW), a transposed-A dense over 600
    rows, and a batched matmul (grid z) over 700 rows."""
    rng = np.random.default_rng(3)
    x = gc.placeholder((None, 7), name="x")
    w = gc.placeholder((7, 5), name="w")
    xt = gc.placeholder((7, None), name="xt")
    a = gc.placeholder((2, None, 3), name="a")
    b = gc.placeholder((2, 3, 4), name="b")
    h = gc.relu(x @ w + 0.25)
    outs = [h, gc.transpose(xt) @ w, gc.matmul(a, b)]
    outs += gc.grad(gc.sum(h * h), [x, w])
    arrays = [rng.standard_normal((1000, 7)).astype(np.float32),
              rng.standard_normal((7, 5)).astype(np.float32),
              rng.standard_normal((7, 600)).astype(np.float32),
              rng.standard_normal((2, 700, 3)).astype(np.float32),
              rng.standard_normal((2, 3, 4)).astype(np.float32)]
    return [x, w, xt, a, b], outs, arrays


def _check_against_numpy(backend, phs, outs, arrays):
    ref = gc.compile(phs, outs, backend="numpy")(*arrays)
    f = gc.compile(phs, outs, backend=backend)
    got = f(*arrays)
    for k, (g, r) in enumerate(zip(got, ref)):
        assert g.shape == r.shape, (k, g.shape, r.shape)
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4, err_msg=f"output {k}")
    return f


def _gemm_launches(f):
    return [la for la in f._exe.launches if "dense" in la.function or "matmul" in la.function]


@needs_ocl
def test_gemm_row_tiles_past_the_grid_cap_opencl(monkeypatch):
    """Grid y capped at 2: each group computes every other row tile (1000 rows = 8 tiles of
    128), results equal numpy's for every GEMM flavour."""
    monkeypatch.setattr(gpu_common, "GEMM_MAX_ROW_GROUPS", 2)
    f = _check_against_numpy("opencl", *_gemm_program())
    gemms = _gemm_launches(f)
    assert gemms and all(la.groups[1] <= 2 for la in gemms)
    assert any(la.groups[1] == 2 for la in gemms)


@needs_ocl
def test_gemm_row_tiles_past_the_grid_cap_cuda(fake_cupy, monkeypatch):
    """The same through the CUDA adapter, on a stand-in device whose grid y holds 3 groups:
    every launch fits it (the stand-in refuses one that does not) and the results are right."""
    monkeypatch.setattr(gpu_common, "GEMM_MAX_ROW_GROUPS", 3)
    monkeypatch.setattr(fake_cupy_module, "MAX_GRID", (INT_MAX, 3, 65535))
    cp = fake_cupy()
    _check_against_numpy("cuda", *_gemm_program())
    gemm_grids = [grid for name, grid, _, _ in cp.launches
                  if "dense" in name or "matmul" in name]
    assert gemm_grids and max(g[1] for g in gemm_grids) == 3


def test_ten_million_row_dense_launch_geometry():
    """A dense layer over a batch of 10,000,000 (78,125 row tiles of 128): rendered, not run.
    Grid y is CUDA's 65535 (it raised NotImplementedError before); a batched matmul too."""
    m = 10_000_000
    g = gemm_launch_geometry(m, 10)
    assert g.grid == (1, 65535, 1) and g.block == (256, 1, 1)
    assert g.global_size == (256, 65535) and not g.empty
    assert gemm_launch_geometry(65535 * 128, 10).grid == (1, 65535, 1)
    assert gemm_launch_geometry(65535 * 128 - 1, 300).grid == (3, 65535, 1)
    assert gemm_launch_geometry(1000, 10).grid == (1, 8, 1)

    x = gc.placeholder((None, 16), name="x")
    w = gc.placeholder((16, 10), name="w")
    a = gc.placeholder((2, None, 16), name="a")
    prog = gc.compile([x, w, a], [gc.relu(x @ w), gc.matmul(a, gc.reshape(w, (1, 16, 10)))],
                      backend="numpy").program
    _, launches = render_gpu(lower_gpu(prog, [(m, 16), (16, 10), (2, m, 16)]))
    gemms = [la for la in launches if "dense" in la.function or "matmul" in la.function]
    assert sorted(la.groups for la in gemms) == [(1, 65535, 1), (1, 65535, 2)]
    for la in launches:
        assert all(0 <= g <= lim for g, lim in zip(la.groups, fake_cupy_module.MAX_GRID))


def test_gemm_template_loops_over_row_tiles():
    """The one template body (both dialects) strides over grid y in 64 bits."""
    text = gpu_common.gemm_template()
    assert re.search(r"for \(gc_i64 gc_bm = \(gc_i64\)GC_GROUP_ID\(1\) \* GC_GEMM_BM; gc_bm < M;"
                     r"\s+gc_bm \+= \(gc_i64\)GC_NUM_GROUPS\(1\) \* GC_GEMM_BM\)", text)
