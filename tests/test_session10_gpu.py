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

import numpy as np
import pytest

import graphc as gc
import fake_cupy as fake_cupy_module
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.errors import KernelLaunchError
from graphc.runtime import gpu_common
from graphc.runtime.gpu_common import gemm_launch_geometry
from graphc.runtime.opencl import opencl_available

needs_ocl = pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")
INT_MAX = 2 ** 31 - 1


@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


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


# -- launch failures ------------------------------------------------------------------------------

class CUDADriverError(RuntimeError):
    """Stands in for cupy.cuda.driver.CUDADriverError."""


def _dense_program():
    x = gc.placeholder((None, 7), name="x")
    w = gc.placeholder((7, 5), name="w")
    return [x, w], gc.relu(x @ w + 1.0)


def _feeds(rows=300):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((rows, 7)).astype(np.float32),
            rng.standard_normal((7, 5)).astype(np.float32))


def test_cuda_launch_failure_names_kernel_node_grid_and_arguments(fake_cupy):
    err = CUDADriverError("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: too many resources requested")
    fake_cupy(fail_launch=("dense", err))
    phs, out = _dense_program()
    f = gc.compile(phs, out, backend="cuda")
    with pytest.raises(KernelLaunchError) as info:
        f(*_feeds())
    e = info.value
    assert isinstance(e, RuntimeError) and e.__cause__ is err
    msg = str(e)
    assert "CUDA kernel k0_dense_add_relu failed to launch on Fake GPU" in msg
    assert "CUDADriverError: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES" in msg
    # the graph node: its name, op, shape and dtype, its operands' shapes, where it was built
    assert re.search(r"node 'dense\+add\+relu_\d+' \(300, 5\) float32 = dense\+add\+relu\("
                     r"'x' \(300, 7\) float32, 'w' \(7, 5\) float32\), "
                     r"built at .*test_session10_gpu\.py:\d+", msg), msg
    assert "grid (groups) (1, 3, 1), block (local) (256, 1, 1)" in msg
    # the kernel's arguments: sizes, then the operand buffers with element counts
    assert "arguments: i32 300; i32 5; i32 7; float32[2100] (slot 0)" in msg
    assert "float32[35] (slot 1)" in msg and "float32[1500] (slot " in msg


def test_cuda_launch_refused_by_the_device_limits_is_a_kernel_launch_error(fake_cupy,
                                                                             monkeypatch):
    """A launch past the device's grid y (here a stand-in device holding 2 groups in y, with
    graphc's cap left at CUDA's 65535) is refused by the device, not by a Python check."""
    monkeypatch.setattr(fake_cupy_module, "MAX_GRID", (INT_MAX, 2, 65535))
    fake_cupy()
    phs, out = _dense_program()
    f = gc.compile(phs, out, backend="cuda")
    with pytest.raises(KernelLaunchError, match=r"(?s)k0_dense_add_relu failed to launch.*"
                       r"FakeCudaError: .*invalid grid \(1, 3, 1\).*grid \(groups\) \(1, 3, 1\)"
                       ) as info:
        f(*_feeds())
    assert isinstance(info.value.__cause__, fake_cupy_module.FakeCudaError)


def test_cuda_fault_at_synchronization_is_a_kernel_launch_error(fake_cupy):
    err = CUDADriverError("CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered")
    cp = fake_cupy()
    phs, out = _dense_program()
    f = gc.compile(phs, out, backend="cuda")
    feeds = _feeds()
    f(*feeds)                     # builds and runs (specialization synchronizes once)
    cp.sync_error = err
    with pytest.raises(KernelLaunchError, match=r"(?s)CUDA device Fake GPU failed while running.*"
                       r"ILLEGAL_ADDRESS.*CUDA_LAUNCH_BLOCKING=1") as info:
        f(*feeds)
    assert info.value.__cause__ is err


@needs_ocl
def test_opencl_enqueue_failure_names_kernel_node_and_grid(monkeypatch):
    import pyopencl as cl
    real = cl.enqueue_nd_range_kernel

    def enqueue(queue, kernel, glob, local, *a, **kw):
        if "dense" in kernel.function_name:
            raise RuntimeError("clEnqueueNDRangeKernel failed: OUT_OF_RESOURCES")
        return real(queue, kernel, glob, local, *a, **kw)
    monkeypatch.setattr(cl, "enqueue_nd_range_kernel", enqueue)
    phs, out = _dense_program()
    f = gc.compile(phs, out, backend="opencl")
    with pytest.raises(KernelLaunchError, match=r"(?s)OpenCL kernel k0_dense_add_relu failed to "
                       r"launch.*OUT_OF_RESOURCES.*node '[^']+' \(300, 5\) float32.*"
                       r"grid \(groups\) \(1, 3, 1\), block \(local\) \(256, 1, 1\)"):
        f(*_feeds())


def test_cuda_device_launch_failure_names_grid_block_and_arguments(fake_cupy):
    """The low-level ``CudaDevice.launch`` (kernel tests, tools) reports failures the same way."""
    from graphc.runtime import cuda
    err = CUDADriverError("CUDA_ERROR_INVALID_VALUE: invalid argument")
    fake_cupy(fail_launch=("fill_one", err))
    dev = cuda.get_device()
    mod = dev.build("GC_KERNEL GC_WG_SIZE(64) void fill_one(GC_GLOBAL float* x, int n)\n"
                    "{ if (GC_GLOBAL_ID(0) < n) x[GC_GLOBAL_ID(0)] = 1.0f; }\n")
    x = dev.empty((5, 4), np.float32)
    with pytest.raises(KernelLaunchError, match=r"(?s)CUDA kernel fill_one failed to launch on "
                       r"Fake GPU: CUDADriverError: CUDA_ERROR_INVALID_VALUE.*"
                       r"grid \(1, 1, 1\), block \(64, 1, 1\).*"
                       r"arguments: float32\[5, 4\] array; int32 20") as info:
        dev.launch(dev.kernel(mod, "fill_one"), (1, 1, 1), (64, 1, 1), [x, 20])
    assert info.value.__cause__ is err


def test_error_classes_are_public():
    """Users catch these without reaching into graphc.errors."""
    import graphc as gc
    from graphc import errors
    assert gc.KernelLaunchError is errors.KernelLaunchError
    assert gc.AxisError is errors.AxisError
