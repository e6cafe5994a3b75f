"""Executable logic shared by the GPU backends (``"cuda"`` and ``"opencl"``).

Like the C backend, a compiled function specializes per concrete input shapes: the first call
with new shapes lowers the program, renders the kernel text once (``codegen/gpu.py``), compiles
it for the device's dialect and binds every launch to its buffers.  A call then

1. checks fed class labels on the host (labels computed in the graph are checked by the
   cross-entropy kernels, which set a status word the host reads before any update runs),
2. brings resident parameters up to date (uploads only those the host changed),
3. uploads the batch (the placeholders' arrays) into per-specialization input buffers,
4. enqueues every kernel on one in-order queue / stream, with no host synchronization,
5. downloads the outputs (the only synchronization of a step).

Parameters live on the device between calls: one device copy per (device, parameter), shared
by every function compiled for that device (a training step and an evaluation function see the
same weights).  After a step that updates a parameter, ``store.device_wrote(mirror)`` marks the
device copy as newer, so ``p.value`` downloads it lazily; a host write (``p.value = x``, the C or
numpy backend updating it) bumps ``store.version`` and the next call re-uploads.  Constants are
uploaded once per specialization.  Intermediates live in one arena buffer per specialization.

A device adapter (``opencl_backend.OpenCLAdapter``, ``cuda_backend.CudaAdapter``) supplies the
few primitives used here: build, prepare a launch, allocate, upload, download, synchronize.
"""
from __future__ import annotations

import collections
import hashlib
import re
import threading
import weakref
from typing import Any

import numpy as np

from ..codegen.gpu import GPURenderer, Launch, lower_gpu
from ..errors import BackendUnavailable, KernelLaunchError
from ..lower import Lowered, label_error
from ..program import Program
from .gpu_common import device_error, expand_includes  # noqa: F401  (device_error: for the adapters)
from .specializing import ShapeSpecializingExecutable, check_dtypes


def launch_error(dialect: str, device: str, launch: Launch, exc: BaseException
                 ) -> KernelLaunchError:
    """The error raised when enqueueing ``launch`` failed with ``exc`` (chain it: ``raise
    launch_error(...) from exc``): the kernel, the graph node it computes, grid and block and
    every argument, so a failure names the op and the shapes, not only the device's code."""
    args = "; ".join(a.describe() for a in launch.args)
    return KernelLaunchError(
        f"{dialect} kernel {launch.function} failed to launch on {device}: "
        f"{type(exc).__name__}: {exc}\n"
        f"  computes: {launch.computes or launch.kernel}\n"
        f"  grid (groups) {tuple(launch.groups)}, block (local) {tuple(launch.local)}\n"
        f"  arguments: {args}")


class DeviceAdapter:
    """What GPUExecutable needs from a device (implemented per dialect)."""

    dialect = ""
    name = ""
    has_fp64 = True

    def build(self, text: str) -> Any:                        # pragma: no cover - interface
        """Compile kernel text (dialect prelude prepended by the adapter)."""
        raise NotImplementedError

    def prepare(self, module, launch: Launch, args: list) -> Any:  # pragma: no cover
        """A ready-to-enqueue launch of ``launch.function`` with flat ``args`` (buffers and
        numpy scalars); ``execute`` runs a list of these in order."""
        raise NotImplementedError

    def execute(self, prepared: list) -> None:                # pragma: no cover
        """Enqueue ``prepared`` in order; a launch the device refuses raises
        ``launch_error`` (KernelLaunchError) chained to the device's exception."""
        raise NotImplementedError

    def alloc(self, nbytes: int) -> Any:                      # pragma: no cover
        raise NotImplementedError

    def upload(self, buffer, array: np.ndarray, keep: list) -> None:  # pragma: no cover
        """Enqueue host -> device (asynchronous where possible; ``keep`` holds whatever must
        stay alive until the next ``sync``)."""
        raise NotImplementedError

    def download(self, buffer, out: np.ndarray, keep: list) -> None:  # pragma: no cover
        """Enqueue device -> host into ``out`` (complete after ``sync``)."""
        raise NotImplementedError

    def sync(self) -> None:                                   # pragma: no cover
        """Wait for everything enqueued; a failure raises ``device_error``
        (KernelLaunchError) chained to the device's exception."""
        raise NotImplementedError

    def options(self) -> tuple:
        """Extra compiler options (part of the module cache key)."""
        return ()

    # -- shared by the adapters --------------------------------------------------------------
    # built programs kept for reuse beyond the specializations using them (those hold their
    # own): the most recently used ones only, so a long-lived process compiling ever new
    # graphs (other sizes in a hyperparameter search) does not keep every program it built
    MODULE_CACHE_SIZE = 32

    def module(self, text: str):
        """``build`` memoized by text and options (identical programs compile once while
        among the ``MODULE_CACHE_SIZE`` most recently used, or still used by a function)."""
        cache = self.__dict__.setdefault("_modules", collections.OrderedDict())
        # comments (node names, the source lines that built them) do not change the program:
        # the same graph built elsewhere reuses it (as the C backend's module key)
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        key = hashlib.sha256(("\0".join(self.options()) + "\0" + code).encode()).hexdigest()
        with self.__dict__.setdefault("_modules_lock", threading.Lock()):
            mod = cache.get(key)
            if mod is not None:
                cache.move_to_end(key)
                return mod
        mod = self.build(text)
        with self.__dict__["_modules_lock"]:
            mod = cache.setdefault(key, mod)
            cache.move_to_end(key)
            while len(cache) > self.MODULE_CACHE_SIZE:
                cache.popitem(last=False)
        return mod

    @property
    def mirror(self) -> "ParamMirror":
        m = self.__dict__.get("_mirror")
        if m is None:
            m = self.__dict__["_mirror"] = ParamMirror(self)
        return m


class _Entry:
    __slots__ = ("buffer", "shape", "dtype", "version", "host_ref")

    def __init__(self, buffer, shape, dtype):
        self.buffer = buffer
        self.shape = shape
        self.dtype = dtype
        self.version = -1
        self.host_ref = None


class ParamMirror:
    """Device copies of parameters on one device (the ``owner`` of ParamStore.device_wrote)."""

    def __init__(self, adapter: DeviceAdapter):
        self.adapter = adapter
        self.entries: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def buffer(self, store, shape, dtype: str):
        e = self.entries.get(store)
        if e is None:
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            e = self.entries[store] = _Entry(self.adapter.alloc(max(nbytes, 1)), tuple(shape),
                                             dtype)
        return e.buffer

    def ensure(self, store, keep: list) -> None:
        """Upload the host value when the device copy is stale."""
        e = self.entries[store]
        owner = store._device_owner
        if owner is self:
            return                          # the device copy is the newest
        if owner is not None:
            store.array                     # another device holds the newest: pull it first
        elif e.host_ref is store._array and e.version == store.version:
            return
        host = store._array
        arr = np.ascontiguousarray(np.broadcast_to(host, e.shape), dtype=e.dtype)
        self.adapter.upload(e.buffer, arr, keep)
        keep.append(arr)
        e.host_ref, e.version = host, store.version

    def pull(self, store) -> None:
        """ParamStore callback: the host reads a parameter this device updated."""
        e = self.entries[store]
        out = np.empty(e.shape, dtype=e.dtype)
        keep: list = []
        self.adapter.download(e.buffer, out, keep)
        self.adapter.sync()
        store.set_from_device(out)
        e.host_ref, e.version = out, store.version


def _nbytes(node) -> int:
    return int(np.prod(node.shape, dtype=np.int64)) * np.dtype(node.dtype).itemsize


_device_locks: "weakref.WeakKeyDictionary[DeviceAdapter, threading.Lock]" = weakref.WeakKeyDictionary()
_device_locks_guard = threading.Lock()


def _device_lock(dev: DeviceAdapter) -> threading.Lock:
    with _device_locks_guard:
        lock = _device_locks.get(dev)
        if lock is None:
            lock = _device_locks[dev] = threading.Lock()
        return lock


class GPUSpecialization:
    """Compiled kernels, buffers and bound launches for one set of concrete input shapes."""

    def __init__(self, program: Program, shapes, dev: DeviceAdapter):
        self.dev = dev
        self.lowered: Lowered = lower_gpu(program, shapes)
        renderer = GPURenderer(self.lowered)
        self.source, self.launches = renderer.render()
        self.scratch_bytes = renderer.scratch_bytes
        status_launches = renderer.status_launches
        if renderer.uses_double and not dev.has_fp64:
            raise BackendUnavailable(
                f"{dev.dialect} backend: the program computes in float64 and the device "
                f"{dev.name!r} does not support double precision (no cl_khr_fp64); use "
                f"float32 data or another backend")
        self.module = dev.module(expand_includes(self.source))
        low = self.lowered
        mirror = dev.mirror
        self.arena = dev.alloc(max(low.arena_bytes, 64))
        self.scratch = dev.alloc(max(self.scratch_bytes, 64))
        self.status = dev.alloc(64)     # int32 status word (computed-label checks), kept 0
        self._no_status = np.zeros(1, np.int32)
        self.slot_buffers: list = []
        self.inputs: list[tuple[int, Any]] = []
        self.params: list[tuple[int, Any]] = []     # (slot, store)
        self.outputs: list[tuple[int, Any, Any]] = []  # (slot, node, buffer)
        keep: list = [self._no_status]
        dev.upload(self.status, self._no_status, keep)
        for i, s in enumerate(low.slots):
            n = s.node
            if s.kind == "param":
                store = n.attrs["store"]
                b = mirror.buffer(store, n.shape, n.dtype)
                self.params.append((i, store))
            else:
                b = dev.alloc(max(_nbytes(n), 1))
                if s.kind == "const":
                    arr = np.ascontiguousarray(np.broadcast_to(n.attrs["value"], n.shape),
                                               dtype=n.dtype)
                    if arr.nbytes:
                        dev.upload(b, arr, keep)
                        keep.append(arr)
                elif s.kind == "input":
                    self.inputs.append((i, b))
                elif s.kind == "output":
                    self.outputs.append((i, n, b))
            self.slot_buffers.append(b)
        dev.sync()
        written = {st.index for k in low.kernels
                   for st in [k.dst] + [m.dst for m in k.members] if st.where == "slot"}
        self.written = [store for i, store in self.params if i in written]
        self.prepared = []
        self.status_cut = 0     # prepared launches to run before reading the status word
        for n, launch in enumerate(self.launches):
            if not launch.empty:
                self.prepared.append(dev.prepare(self.module, launch, self._flat_args(launch)))
            if n + 1 == status_launches:
                self.status_cut = len(self.prepared)

    def _flat_args(self, launch: Launch) -> list:
        out = []
        for a in launch.args:
            if a.kind == "buf":
                st = a.storage
                out.append(self.arena if st.where == "arena" else self.slot_buffers[st.index])
                out.append(np.int64(a.element_offset()))
            elif a.kind == "scratch":
                out += [self.scratch, np.int64(0)]
            elif a.kind == "status":
                out += [self.status, np.int64(0)]
            elif a.kind == "i32":
                out.append(np.int32(a.value))
            elif a.kind == "i64":
                out.append(np.int64(a.value))
            elif a.kind == "u64":
                out.append(np.uint64(a.value))
            else:  # pragma: no cover
                raise AssertionError(a.kind)
        return out

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        # one step at a time per device: the arena, the input buffers and the parameter mirror
        # (shared by every function compiled for the device) are reused by every call
        with _device_lock(self.dev):
            return self._run(feeds)

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        dev = self.dev
        for (slot, classes) in self.lowered.label_checks:
            labels = feeds[slot]
            if labels.size and (labels.min() < 0 or labels.max() >= classes):
                raise ValueError(f"cross_entropy: labels must be in [0, {classes}), got range "
                                 f"[{labels.min()}, {labels.max()}] in input "
                                 f"{self.lowered.slots[slot].node.name!r}; nothing was updated")
        keep: list = []
        mirror = dev.mirror
        for _, store in self.params:
            mirror.ensure(store, keep)
        for (i, b), arr in zip(self.inputs, feeds):
            if arr.nbytes:
                dev.upload(b, arr, keep)
                keep.append(arr)
        if self.status_cut:
            # the kernels checking computed labels ran: any in-place update runs only after
            # the host has seen their status (one extra synchronization, only in such graphs)
            dev.execute(self.prepared[:self.status_cut])
            status = np.zeros(1, np.int32)
            dev.download(self.status, status, keep)
            dev.sync()
            if status[0]:
                dev.upload(self.status, self._no_status, keep)
                dev.sync()
                raise label_error(self.lowered, int(status[0]), feeds)
            dev.execute(self.prepared[self.status_cut:])
        else:
            dev.execute(self.prepared)
        for store in self.written:
            store.device_wrote(mirror)
        outs = []
        for _, node, b in self.outputs:
            out = np.empty(node.shape, dtype=node.dtype)
            if out.nbytes:
                dev.download(b, out, keep)
            outs.append(out)
        dev.sync()
        return outs


class GPUExecutable(ShapeSpecializingExecutable):
    """Base of CudaExecutable / OpenCLExecutable: specializes per concrete input shapes.

    ``source`` is the dialect-neutral kernel text; the runtime prepends the dialect prelude
    and pastes the included headers."""

    backend = "gpu"

    def __init__(self, program: Program, device: DeviceAdapter):
        from ..codegen.gpu import GPU_TYPES
        check_dtypes(program, GPU_TYPES, "GPU")
        super().__init__(program)
        self.device = device

    def _specialize(self, shapes) -> GPUSpecialization:
        return GPUSpecialization(self.program, shapes, self.device)

    @property
    def launches(self) -> list[Launch]:
        return list(self._current().launches)

    def memory_report(self) -> dict:
        return dict(super().memory_report(), device=self.device.name,
                    scratch=self._current().scratch_bytes)
