"""Session 12: the low-level device helpers (``CudaDevice.synchronize`` / ``download``,
``OpenCLDevice.finish``: kernel tests, tools, benchmarks) report a kernel that faulted since the
last wait as ``KernelLaunchError`` naming the device, with the device's error chained, as the
compiled functions' own synchronization does (session 10); they raised CuPy's / pyopencl's raw
error."""
from __future__ import annotations

import numpy as np
import pytest

from graphc.errors import KernelLaunchError
from graphc.runtime.opencl import opencl_available


class CUDADriverError(RuntimeError):
    """Stands in for cupy.cuda.driver.CUDADriverError."""


def _fault():
    return CUDADriverError("CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered")


def test_cuda_device_synchronize_fault_is_a_kernel_launch_error(fake_cupy):
    from graphc.runtime import cuda
    cp = fake_cupy()
    dev = cuda.get_device()
    dev.synchronize()  # nothing pending: no error
    cp.sync_error = err = _fault()
    with pytest.raises(KernelLaunchError, match=r"(?s)CUDA device Fake GPU failed while running.*"
                       r"ILLEGAL_ADDRESS.*CUDA_LAUNCH_BLOCKING=1") as info:
        dev.synchronize()
    assert info.value.__cause__ is err
    with pytest.raises(KernelLaunchError):
        dev.finish()  # the alias


def test_cuda_device_download_fault_is_a_kernel_launch_error(fake_cupy):
    from graphc.runtime import cuda
    cp = fake_cupy()
    dev = cuda.get_device()
    x = dev.to_device(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(dev.download(x), np.arange(6, dtype=np.float32))
    cp.sync_error = err = _fault()
    with pytest.raises(KernelLaunchError, match="CUDA device Fake GPU failed") as info:
        dev.download(x)
    assert info.value.__cause__ is err


@pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")
def test_opencl_device_finish_failure_is_a_kernel_launch_error(monkeypatch):
    from graphc.runtime import opencl
    dev = opencl.get_device()
    dev.finish()  # nothing pending: no error
    err = RuntimeError("clFinish failed: OUT_OF_RESOURCES")

    class FailingQueue:
        def finish(self):
            raise err

    monkeypatch.setattr(dev, "queue", FailingQueue())
    with pytest.raises(KernelLaunchError, match=r"OpenCL device .+ failed while running.*"
                       r"OUT_OF_RESOURCES") as info:
        dev.finish()
    assert info.value.__cause__ is err
