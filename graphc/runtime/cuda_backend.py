"""``backend="cuda"``: graphc's GPU kernels as CUDA C++ through CuPy (NVRTC) on one stream.
See ``gpu_exec`` for the execution model."""
from __future__ import annotations

import threading

import numpy as np

from ..codegen.gpu import Launch
from ..program import Program
from .cuda import CudaDevice, get_device
from .gpu_common import CUDA_BLOCKING_HINT
from .gpu_exec import DeviceAdapter, GPUExecutable, device_error, launch_error

# kernels run asynchronously: a fault is reported at the next synchronization, not by the
# launch that caused it, unless launches are made synchronous
_BLOCKING_HINT = CUDA_BLOCKING_HINT


class CudaAdapter(DeviceAdapter):
    """DeviceAdapter over graphc.runtime.cuda.CudaDevice: buffers are cupy uint8 arrays, every
    copy and launch goes to the device's one stream (no host sync until ``sync``)."""

    dialect = "cuda"
    has_fp64 = True

    def __init__(self, device: CudaDevice):
        self.device = device
        self.cp = device.cp
        self.stream = device.stream
        self.name = device.name

    def build(self, text: str):
        return self.device.build(text)

    def prepare(self, module, launch: Launch, args: list):
        fn = self.device.kernel(module, launch.function)
        grid = tuple(int(g) for g in launch.groups)
        block = tuple(int(b) for b in launch.local)
        return fn, grid, block, tuple(args), launch

    def execute(self, prepared: list) -> None:
        with self.device.device, self.stream:
            for fn, grid, block, args, launch in prepared:
                try:
                    fn(grid, block, args)
                except Exception as e:  # CUDADriverError & co: name the kernel and its node
                    raise launch_error("CUDA", self.name, launch, e) from e

    def alloc(self, nbytes: int):
        with self.device.device:
            return self.cp.empty(max(int(nbytes), 1), dtype=self.cp.uint8)

    @staticmethod
    def _bytes(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array).reshape(-1).view(np.uint8)

    def upload(self, buffer, array: np.ndarray, keep: list) -> None:
        host = self._bytes(array)
        keep.append(host)
        with self.device.device:
            buffer[:host.size].set(host, stream=self.stream)

    def download(self, buffer, out: np.ndarray, keep: list) -> None:
        host = out.reshape(-1).view(np.uint8)  # a view: the bytes land in ``out``
        with self.device.device:
            buffer[:host.size].get(stream=self.stream, out=host)

    def sync(self) -> None:
        try:
            self.stream.synchronize()
        except Exception as e:  # a kernel fault (illegal address, ...) surfaces here
            raise device_error("CUDA", self.name, e, _BLOCKING_HINT) from e


_ADAPTERS: dict = {}
_LOCK = threading.Lock()


def default_adapter() -> CudaAdapter:
    dev = get_device()  # raises BackendUnavailable (no cupy, no driver, no device)
    with _LOCK:
        a = _ADAPTERS.get(id(dev))
        if a is None:
            a = _ADAPTERS[id(dev)] = CudaAdapter(dev)
        return a


class CudaExecutable(GPUExecutable):
    """``backend="cuda"``: raises BackendUnavailable without CuPy, a driver or a device."""

    backend = "cuda"

    def __init__(self, program: Program):
        super().__init__(program, default_adapter())
