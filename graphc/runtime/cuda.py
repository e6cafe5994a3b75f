"""CUDA runtime through CuPy (RawModule, compiled by NVRTC), used by backend="cuda".

CuPy is imported lazily; when it is missing, or there is no driver / device,
:class:`BackendUnavailable` is raised saying which.  Kernel text is the same
as for OpenCL; the CUDA dialect prelude (gc_dialect.h) is prepended.

All launches go to one non-blocking stream owned by the :class:`CudaDevice`;
uploads/downloads use that stream too, so work is ordered.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import KernelLaunchError
from .gpu_common import CUDA_BLOCKING_HINT, BackendUnavailable, device_error, program_source

__all__ = ["CudaDevice", "get_device", "cuda_available", "import_cupy"]

_INSTALL_HINT = "pip install cupy-cuda12x (and an NVIDIA driver with a CUDA GPU)"


def import_cupy():
    try:
        import cupy
    except Exception as e:
        raise BackendUnavailable(
            f"CUDA backend unavailable: cupy cannot be imported ({e}); {_INSTALL_HINT}"
        ) from e
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver / insufficient driver
        raise BackendUnavailable(
            f"CUDA backend unavailable: no usable CUDA driver ({e})"
        ) from e
    if n <= 0:
        raise BackendUnavailable("CUDA backend unavailable: no CUDA device found")
    return cupy


class CudaDevice:
    """One CUDA device and one stream."""

    FUNCTION_CACHE_SIZE = 1024  # kernels of about the 32 programs the adapter's memo keeps

    def __init__(self, device_id: int = 0):
        cp = import_cupy()
        self.cp = cp
        n = cp.cuda.runtime.getDeviceCount()
        if not 0 <= device_id < n:
            raise BackendUnavailable(f"CUDA backend unavailable: no device {device_id} (have {n})")
        self.device = cp.cuda.Device(device_id)
        with self.device:
            self.stream = cp.cuda.Stream(non_blocking=True)
        self._functions: dict = {}

    @property
    def name(self) -> str:
        props = self.cp.cuda.runtime.getDeviceProperties(self.device.id)
        n = props.get("name", b"cuda")
        return n.decode() if isinstance(n, bytes) else str(n)

    @property
    def arch(self) -> str:
        return "sm_" + str(self.device.compute_capability)

    def __repr__(self) -> str:
        return f"CudaDevice({self.device.id}, {self.name!r})"

    # -- programs -----------------------------------------------------------
    def build(self, source: str, options=()):
        """A cupy.RawModule for the kernel text (dialect prelude prepended).

        Compiles eagerly so errors surface here rather than at the first launch: CuPy's
        CompileException (an ``Exception``, carrying the NVRTC log) becomes a RuntimeError
        naming the device and architecture, as the OpenCL device's build failures are.
        """
        cp = self.cp
        text = program_source("cuda", source)
        try:
            with self.device:
                mod = cp.RawModule(code=text, options=tuple(options))
                compile_now = getattr(mod, "compile", None)  # CuPy >= 9
                if compile_now is not None:
                    compile_now()
        except Exception as e:
            raise RuntimeError(f"CUDA program build failed on {self.name} ({self.arch}):\n"
                               f"{type(e).__name__}: {e}") from e
        return mod

    def load_cubin(self, path: str):
        """A cupy.RawModule from a cubin file (e.g. from nvrtc.compile_cubin)."""
        with self.device:
            return self.cp.RawModule(path=str(path))

    def kernel(self, module, name: str):
        key = (id(module), name)
        f = self._functions.get(key)
        if f is None or f[0] is not module:
            with self.device:
                f = (module, module.get_function(name))
            self._functions[key] = f
            # the most recently looked up only: every entry holds its module (a long-lived
            # process compiling ever new graphs kept every module and kernel it ever built)
            while len(self._functions) > self.FUNCTION_CACHE_SIZE:
                self._functions.pop(next(iter(self._functions)), None)
        return f[1]

    # -- memory -------------------------------------------------------------
    def empty(self, shape, dtype=np.float32):
        with self.device:
            return self.cp.empty(shape, dtype=dtype)

    def to_device(self, array):
        a = np.ascontiguousarray(array)
        with self.device, self.stream:
            out = self.cp.empty(a.shape, dtype=a.dtype)
            if a.size:
                out.set(a, stream=self.stream)
        return out

    def download(self, darr, out=None):
        """Copy a cupy array to host; blocking.  A kernel fault enqueued earlier raises
        KernelLaunchError (as ``synchronize``)."""
        with self.device:
            try:
                res = darr.get(stream=self.stream, out=out)
                self.stream.synchronize()
            except Exception as e:
                raise device_error("CUDA", self.name, e, CUDA_BLOCKING_HINT) from e
        return res

    # -- launch -------------------------------------------------------------
    @staticmethod
    def _arg(a):
        if isinstance(a, bool):
            return np.int32(a)
        if isinstance(a, int):
            return np.int32(a)
        if isinstance(a, float):
            return np.float32(a)
        return a

    def launch(self, kernel, grid, block, args, shared_mem: int = 0):
        """Launch on this device's stream.  Python ints/bools become int32 and
        floats float32 (pass numpy scalars for other types); an empty grid is
        skipped."""
        grid = tuple(int(g) for g in grid)
        if any(g == 0 for g in grid):
            return
        block = tuple(int(b) for b in block)
        args = tuple(self._arg(a) for a in args)
        with self.device, self.stream:
            try:
                kernel(grid, block, args, shared_mem=shared_mem)
            except Exception as e:  # CUDADriverError & co: say which launch, with what
                raise KernelLaunchError(
                    f"CUDA kernel {getattr(kernel, 'name', None) or type(kernel).__name__} "
                    f"failed to launch on {self.name}: {type(e).__name__}: {e}\n"
                    f"  grid {grid}, block {block}, shared memory {shared_mem} bytes\n"
                    f"  arguments: {'; '.join(_describe(a) for a in args)}") from e

    def synchronize(self):
        """Wait for this device's stream; a kernel that faulted since (an illegal address, a
        trap) raises KernelLaunchError naming the device, chained to CuPy's error."""
        try:
            self.stream.synchronize()
        except Exception as e:
            raise device_error("CUDA", self.name, e, CUDA_BLOCKING_HINT) from e

    finish = synchronize


def _describe(a) -> str:
    """A launch argument for an error message: an array's dtype and shape, a scalar's value."""
    if hasattr(a, "shape") and getattr(a, "ndim", 0):
        return f"{a.dtype}{list(a.shape)} array"
    return f"{getattr(a, 'dtype', type(a).__name__)} {a}"


_DEFAULT = None
_LOCK = threading.Lock()


def get_device() -> CudaDevice:
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = CudaDevice()
        return _DEFAULT


def cuda_available() -> bool:
    try:
        import_cupy()
        return True
    except BackendUnavailable:
        return False
