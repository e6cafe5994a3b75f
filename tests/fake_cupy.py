"""A stand-in for CuPy that runs ``backend="cuda"`` without an NVIDIA GPU (tests only).

Every CuPy call graphc.runtime.cuda / cuda_backend makes is implemented: device and stream
objects (context managers recording which is current), ``cupy.empty`` (numpy-backed arrays
with ``set`` / ``get`` on a stream), ``RawModule`` (``compile`` runs NVRTC on the CUDA text for
the device's architecture when a compiler is installed) and its kernels.  A kernel launch checks
what a real GPU would reject -- the grid and block limits, the block size against the kernel's
``__launch_bounds__``, numpy-typed scalar arguments, the launch being on graphc's stream -- then
runs the same kernel body as OpenCL C on the default OpenCL device (PoCL here) with the CUDA
grid and block as OpenCL groups and local size, and copies the buffers back: the numbers are
those of the CUDA launch configuration and argument list graphc computed.  Device failures can
be injected: ``fail_launch`` (a kernel's launches raise) and ``sync_error`` (synchronizing the
stream raises, as a kernel fault is reported)."""
from __future__ import annotations

import re
import types

import numpy as np

MAX_GRID = (2 ** 31 - 1, 65535, 65535)
MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS = 1024


class FakeCudaError(RuntimeError):
    pass


class FakeArray:
    """A device array: a numpy array; slices share the memory."""

    def __init__(self, host: np.ndarray, cp):
        self.host = host
        self.cp = cp
        self.base_id = id(host.base if host.base is not None else host)

    def __getitem__(self, key):
        return FakeArray(self.host[key], self.cp)

    @property
    def nbytes(self):
        return self.host.nbytes

    shape = property(lambda self: self.host.shape)
    dtype = property(lambda self: self.host.dtype)
    ndim = property(lambda self: self.host.ndim)

    def set(self, arr, stream=None):
        self.cp.log.append(("set", stream))
        assert arr.shape == self.host.shape and arr.dtype == self.host.dtype
        self.host[...] = arr

    def get(self, stream=None, out=None):
        self.cp.log.append(("get", stream))
        if out is None:
            return self.host.copy()
        assert out.shape == self.host.shape and out.dtype == self.host.dtype
        assert out.flags.c_contiguous and out.flags.writeable
        out[...] = self.host
        return out


class FakeStream:
    def __init__(self, cp, non_blocking=False):
        self.cp = cp
        self.non_blocking = non_blocking
        self.syncs = 0

    def __enter__(self):
        self.cp.current_streams.append(self)
        return self

    def __exit__(self, *exc):
        self.cp.current_streams.pop()

    def synchronize(self):
        self.syncs += 1
        if self.cp.sync_error is not None:   # a kernel fault reported asynchronously
            raise self.cp.sync_error


class FakeDevice:
    def __init__(self, cp, i):
        self.cp = cp
        self.id = i
        self.compute_capability = cp.cc

    def __enter__(self):
        self.cp.current_devices.append(self.id)
        return self

    def __exit__(self, *exc):
        self.cp.current_devices.pop()


class FakeFunction:
    def __init__(self, module, name):
        self.module = module
        self.name = name
        m = re.search(rf"GC_WG_SIZE\((\d+)\) void {re.escape(name)}\(", module.body)
        if m is None:   # a GEMM instance: the template's bounds, named by GC_GEMM_NAME
            assert f"#define GC_GEMM_NAME {name}" in module.body, name
            self.bounds = 256
        else:
            self.bounds = int(m.group(1))

    def __call__(self, grid, block, args, shared_mem=0):
        cp = self.module.cp
        stream = cp.current_streams[-1] if cp.current_streams else None
        cp.launches.append((self.name, grid, block, stream))
        if len(grid) != 3 or len(block) != 3:
            raise FakeCudaError(f"{self.name}: grid {grid} / block {block} not 3-D")
        if any(not 0 < g <= lim for g, lim in zip(grid, MAX_GRID)):
            raise FakeCudaError(f"{self.name}: invalid grid {grid} (limits {MAX_GRID})")
        if any(not 0 < b <= lim for b, lim in zip(block, MAX_BLOCK)) or \
                int(np.prod(block)) > MAX_THREADS:
            raise FakeCudaError(f"{self.name}: invalid block {block}")
        if int(np.prod(block)) > self.bounds:
            raise FakeCudaError(f"{self.name}: block {block} exceeds __launch_bounds__"
                                f"({self.bounds}): CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES")
        for a in args:
            if not isinstance(a, (FakeArray, np.int32, np.int64, np.uint64)):
                raise FakeCudaError(f"{self.name}: argument {a!r} of type {type(a)}")
        if cp.fail_launch is not None and cp.fail_launch[0] in self.name:
            raise cp.fail_launch[1]
        cp.run_opencl(self.module, self.name, grid, block, args)


class FakeRawModule:
    def __init__(self, cp, code=None, options=(), path=None):
        assert path is None, "cubin files are not emulated"
        self.cp = cp
        self.code = code
        self.options = tuple(options)
        marker = '#line 1 "graphc_program"\n'
        assert marker in code and not code.startswith("#define GC_OPENCL")
        self.body = code.split(marker, 1)[1]
        self.compiled = False
        self._ocl = None

    def compile(self):
        if self.cp.compile_error is not None:
            raise self.cp.compile_error
        if self.cp.nvrtc:
            from graphc.runtime import nvrtc
            nvrtc.compile_cubin(self.code, "fake_cupy", arch="sm_" + self.cp.cc,
                                options=self.options, prelude=False)
        self.compiled = True

    def get_function(self, name):
        assert name in self.body, name
        return FakeFunction(self, name)


class FakeCupy(types.ModuleType):
    """``sys.modules["cupy"]`` for a test (see the module docstring)."""

    uint8 = np.uint8

    def __init__(self, devices=1, cc="90", nvrtc=False, name=b"Fake GPU", compile_error=None,
                 fail_launch=None, sync_error=None):
        super().__init__("cupy")
        self.compile_error = compile_error
        # (substring of a kernel name, exception its launches raise); an exception every
        # stream synchronization raises
        self.fail_launch = fail_launch
        self.sync_error = sync_error
        self.cc = cc
        self.nvrtc = nvrtc
        self.log: list = []
        self.launches: list = []
        self.current_streams: list = []
        self.current_devices: list = []
        self.modules: list = []
        self._cl = None
        cp = self

        class _Runtime:
            @staticmethod
            def getDeviceCount():
                if isinstance(devices, Exception):
                    raise devices
                return devices

            @staticmethod
            def getDeviceProperties(i):
                return {"name": name}

        self.cuda = types.SimpleNamespace(
            runtime=_Runtime, Device=lambda i=0: FakeDevice(cp, i),
            Stream=lambda non_blocking=False: FakeStream(cp, non_blocking))

    def RawModule(self, code=None, options=(), path=None):
        m = FakeRawModule(self, code, options, path)
        self.modules.append(m)
        return m

    def empty(self, shape, dtype=np.float32):
        return FakeArray(np.zeros(shape, dtype=dtype), self)

    # -- running a launch as OpenCL ---------------------------------------------------------
    def run_opencl(self, module, name, grid, block, args):
        from graphc.runtime.opencl import get_device
        dev = get_device()
        cl = dev.cl
        if module._ocl is None:   # built as the OpenCL backend builds (GRAPHC_OPENCL_OPTIONS)
            import os
            import shlex
            module._ocl = dev.build(module.body, options=shlex.split(
                os.environ.get("GRAPHC_OPENCL_OPTIONS", "")))
        bufs: dict = {}
        cl_args = []
        for a in args:
            if isinstance(a, FakeArray):
                base = a.host if a.host.base is None else a.host.base
                assert a.host.base is None, "kernels get whole allocations"
                if a.base_id not in bufs:
                    b = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, size=max(base.nbytes, 1))
                    if base.nbytes:
                        cl.enqueue_copy(dev.queue, b, base)
                    bufs[a.base_id] = (b, base)
                cl_args.append(bufs[a.base_id][0])
            else:
                cl_args.append(a)
        k = cl.Kernel(module._ocl, name)
        k.set_args(*cl_args)
        cl.enqueue_nd_range_kernel(dev.queue, k, tuple(g * b for g, b in zip(grid, block)),
                                   tuple(block))
        for b, base in bufs.values():
            if base.nbytes:
                cl.enqueue_copy(dev.queue, base, b)
        dev.queue.finish()
