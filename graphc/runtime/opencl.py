"""OpenCL runtime (pyopencl), used by backend="opencl" and, on PoCL, by CI.

pyopencl is imported lazily; when it, an OpenCL platform or a device is
missing, :class:`BackendUnavailable` is raised saying which.

Device choice: env ``GRAPHC_OPENCL_DEVICE`` if set -- ``"P:D"`` (platform and
device indices), ``"gpu"``/``"cpu"`` (first device of that type) or a
case-insensitive substring of "<platform name> <device name>" -- else the first
GPU, else the first CPU device.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .gpu_common import BackendUnavailable, device_error, program_source

__all__ = ["OpenCLDevice", "get_device", "opencl_available", "import_pyopencl"]

_INSTALL_HINT = (
    "pip install graphc[opencl] (pyopencl) and an OpenCL driver, e.g. "
    "apt-get install pocl-opencl-icd ocl-icd-libopencl1 for PoCL on the CPU"
)


def import_pyopencl():
    try:
        import pyopencl as cl  # noqa: F401
    except Exception as e:  # ImportError, or a broken ICD loader
        raise BackendUnavailable(
            f"OpenCL backend unavailable: pyopencl cannot be imported ({e}); {_INSTALL_HINT}"
        ) from e
    return cl


def _all_devices(cl):
    try:
        platforms = cl.get_platforms()
    except Exception as e:  # pyopencl raises LogicError/RuntimeError when no ICD is found
        raise BackendUnavailable(
            f"OpenCL backend unavailable: no OpenCL platform found ({e}); {_INSTALL_HINT}"
        ) from e
    if not platforms:
        raise BackendUnavailable(
            f"OpenCL backend unavailable: no OpenCL platform found; {_INSTALL_HINT}"
        )
    out = []
    for pi, p in enumerate(platforms):
        try:
            devs = p.get_devices()
        except Exception:
            continue
        for di, d in enumerate(devs):
            out.append((pi, di, p, d))
    if not out:
        raise BackendUnavailable(
            "OpenCL backend unavailable: OpenCL platform(s) "
            + ", ".join(p.name for p in platforms)
            + f" expose no device; {_INSTALL_HINT}"
        )
    return out


def _choose_device(cl, spec: str | None = None):
    devs = _all_devices(cl)
    spec = spec if spec is not None else os.environ.get("GRAPHC_OPENCL_DEVICE", "")
    spec = spec.strip()
    if spec:
        if ":" in spec and all(s.strip().isdigit() for s in spec.split(":", 1)):
            pi, di = (int(s) for s in spec.split(":", 1))
            for p_i, d_i, _p, d in devs:
                if (p_i, d_i) == (pi, di):
                    return d
        else:
            low = spec.lower()
            want = {"gpu": cl.device_type.GPU, "cpu": cl.device_type.CPU}.get(low)
            for _pi, _di, p, d in devs:
                if want is not None:
                    if d.type & want:
                        return d
                elif low in f"{p.name} {d.name}".lower():
                    return d
        raise BackendUnavailable(
            f"OpenCL backend unavailable: GRAPHC_OPENCL_DEVICE={spec!r} matches no device; have "
            + "; ".join(f"{pi}:{di} {p.name} / {d.name}" for pi, di, p, d in devs)
        )
    for kind in (cl.device_type.GPU, cl.device_type.CPU):
        for _pi, _di, _p, d in devs:
            if d.type & kind:
                return d
    return devs[0][3]


class OpenCLDevice:
    """One OpenCL device with its context and in-order queue."""

    def __init__(self, device_spec: str | None = None):
        cl = import_pyopencl()
        self.cl = cl
        self.device = _choose_device(cl, device_spec)
        try:
            self.context = cl.Context([self.device])
            self.queue = cl.CommandQueue(self.context, self.device)
        except Exception as e:
            raise BackendUnavailable(
                f"OpenCL backend unavailable: cannot open device {self.device.name!r} ({e})"
            ) from e
        self._kernels: dict = {}

    # -- info ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.device.platform.name} / {self.device.name}"

    @property
    def is_cpu(self) -> bool:
        return bool(self.device.type & self.cl.device_type.CPU)

    @property
    def has_fp64(self) -> bool:
        return "cl_khr_fp64" in self.device.extensions

    def __repr__(self) -> str:
        return f"OpenCLDevice({self.name!r})"

    # -- programs -----------------------------------------------------------
    def build(self, source: str, options=()):
        """Compile kernel text (dialect prelude prepended); returns a cl.Program.

        Errors raise RuntimeError carrying the compiler log.
        """
        cl = self.cl
        text = program_source("opencl", source)
        try:
            return cl.Program(self.context, text).build(options=list(options))
        except cl.Error as e:  # RuntimeError subclass in pyopencl; includes the build log
            raise RuntimeError(f"OpenCL program build failed on {self.name}:\n{e}") from e

    def kernel(self, program, name: str):
        """A cl.Kernel for ``name`` (cached per program)."""
        key = (id(program), name)
        k = self._kernels.get(key)
        if k is None or k[0] is not program:
            k = (program, self.cl.Kernel(program, name))
            self._kernels[key] = k
        return k[1]

    # -- memory -------------------------------------------------------------
    def empty(self, nbytes: int):
        """Uninitialised device buffer of ``nbytes`` (at least 1 byte is allocated)."""
        cl = self.cl
        nbytes = max(int(nbytes), 1)
        # (pyopencl said "LogicError: create_buffer failed: INVALID_BUFFER_SIZE")
        largest = self.device.max_mem_alloc_size
        if nbytes > largest:
            raise MemoryError(f"OpenCL device {self.name}: cannot allocate a buffer of {nbytes} "
                              f"bytes (its largest buffer is {largest} bytes)")
        try:
            return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, size=nbytes)
        except cl.Error as e:
            raise MemoryError(f"OpenCL device {self.name}: cannot allocate a buffer of {nbytes} "
                              f"bytes ({e})") from None

    def to_device(self, array):
        """Upload a numpy array (made C-contiguous) to a new buffer."""
        a = np.ascontiguousarray(array)
        buf = self.empty(a.nbytes)
        if a.nbytes:
            self.cl.enqueue_copy(self.queue, buf, a)
        return buf

    def upload(self, buf, array):
        """Copy a numpy array into an existing buffer."""
        a = np.ascontiguousarray(array)
        if a.nbytes:
            self.cl.enqueue_copy(self.queue, buf, a)

    def download(self, buf, shape, dtype=np.float32, out=None):
        """Copy a buffer back into a new (or the given) numpy array; blocking."""
        if out is None:
            out = np.empty(shape, dtype=dtype)
        if out.nbytes:
            self.cl.enqueue_copy(self.queue, out, buf, is_blocking=True)
        return out

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

    def launch(self, kernel, global_size, local_size, args):
        """Enqueue ``kernel`` over ``global_size`` (multiple of ``local_size``).

        Python ints/bools become int32 and floats float32; pass numpy scalars
        for other types.  A launch with an empty global size is skipped.
        """
        global_size = tuple(int(g) for g in global_size)
        if any(g == 0 for g in global_size):
            return None
        local = None if local_size is None else tuple(int(l) for l in local_size)
        kernel.set_args(*[self._arg(a) for a in args])
        return self.cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local)

    def finish(self):
        """Wait for the queue; a kernel that failed since raises KernelLaunchError naming the
        device, chained to pyopencl's error."""
        try:
            self.queue.finish()
        except Exception as e:
            raise device_error("OpenCL", self.name, e) from e


_DEFAULT = None
_LOCK = threading.Lock()


def get_device() -> OpenCLDevice:
    """Process-wide default OpenCLDevice (created on first use)."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = OpenCLDevice()
        return _DEFAULT


def opencl_available() -> bool:
    try:
        get_device()
        return True
    except BackendUnavailable:
        return False
