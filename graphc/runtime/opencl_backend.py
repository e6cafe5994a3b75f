"""``backend="opencl"``: graphc's GPU kernels as OpenCL C through pyopencl (any OpenCL device;
PoCL runs them on the CPU in CI).  See ``gpu_exec`` for the execution model.

``GRAPHC_OPENCL_OPTIONS``: extra OpenCL build options (e.g. ``-cl-opt-disable``, which makes
PoCL compile kernels about 3x faster: the test suite uses it for its large op sweeps).
Device choice: ``GRAPHC_OPENCL_DEVICE`` (see graphc.runtime.opencl)."""
from __future__ import annotations

import os
import shlex
import threading
import warnings

import numpy as np

from ..codegen.gpu import Launch
from ..program import Program
from .gpu_exec import DeviceAdapter, GPUExecutable, device_error, launch_error
from .opencl import OpenCLDevice, get_device


class OpenCLAdapter(DeviceAdapter):
    """DeviceAdapter over graphc.runtime.opencl.OpenCLDevice (one in-order queue)."""

    dialect = "opencl"

    def __init__(self, device: OpenCLDevice):
        self.device = device
        self.cl = device.cl
        self.queue = device.queue
        self.name = device.name
        self.has_fp64 = device.has_fp64

    def options(self) -> tuple:
        return tuple(shlex.split(os.environ.get("GRAPHC_OPENCL_OPTIONS", "")))

    def build(self, text: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyopencl warns about non-empty build logs
            return self.device.build(text, options=self.options())

    def prepare(self, module, launch: Launch, args: list):
        k = self.cl.Kernel(module, launch.function)
        k.set_args(*args)
        local = tuple(int(x) for x in launch.local)
        glob = tuple(int(g) * int(l) for g, l in zip(launch.groups, launch.local))
        return k, glob, local, launch

    def execute(self, prepared: list) -> None:
        enqueue, queue = self.cl.enqueue_nd_range_kernel, self.queue
        for k, glob, local, launch in prepared:
            try:
                enqueue(queue, k, glob, local)
            except Exception as e:  # cl.Error (INVALID_WORK_GROUP_SIZE, ...): name the node
                raise launch_error("OpenCL", self.name, launch, e) from e

    def alloc(self, nbytes: int):
        return self.device.empty(nbytes)

    def upload(self, buffer, array: np.ndarray, keep: list) -> None:
        keep.append(self.cl.enqueue_copy(self.queue, buffer, array, is_blocking=False))

    def download(self, buffer, out: np.ndarray, keep: list) -> None:
        keep.append(self.cl.enqueue_copy(self.queue, out, buffer, is_blocking=False))

    def sync(self) -> None:
        try:
            self.queue.finish()
        except Exception as e:
            raise device_error("OpenCL", self.name, e) from e


_ADAPTERS: dict = {}
_LOCK = threading.Lock()


def default_adapter() -> OpenCLAdapter:
    """The process-wide adapter of the default OpenCL device (GRAPHC_OPENCL_DEVICE)."""
    dev = get_device()  # raises BackendUnavailable with the reason
    with _LOCK:
        a = _ADAPTERS.get(id(dev))
        if a is None:
            a = _ADAPTERS[id(dev)] = OpenCLAdapter(dev)
        return a


class OpenCLExecutable(GPUExecutable):
    """``backend="opencl"``: raises BackendUnavailable when pyopencl, an OpenCL platform or a
    device is missing."""

    backend = "opencl"

    def __init__(self, program: Program):
        super().__init__(program, default_adapter())
