"""The part every compiled backend shares: one specialization per concrete input shapes.

A specialization object (built by the subclass's ``_specialize``) has ``lowered``, ``source``
and ``run(feeds)``.  Shapes seen before reuse their specialization (like ``jax.jit``).
"""
from __future__ import annotations

import threading

import numpy as np

from ..program import Program


def check_dtypes(program: Program, supported, backend: str) -> None:
    """TypeError at compile time, naming the first node whose dtype ``backend`` cannot compute
    (float16 on C: it used to surface only at the first call)."""
    from ..ir import toposort
    roots = list(program.outputs) + [v for _, v in program.updates] + list(program.inputs)
    for n in toposort(roots):
        if n.dtype not in supported:
            what = n.attrs.get("label", n.op)
            raise TypeError(f"the {backend} backend does not support dtype {n.dtype}: node "
                            f"{n.name} ({what}, shape {n.shape}); use float32 or float64")


class ShapeSpecializingExecutable:
    def __init__(self, program: Program):
        self.program = program
        self._specs: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self._last = None

    def _specialize(self, shapes: tuple):
        raise NotImplementedError

    def specialize(self, shapes):
        key = tuple(tuple(s) for s in shapes)
        spec = self._specs.get(key)  # (a dict read is atomic: the common case takes no lock)
        if spec is None:
            # built under the lock, so concurrent first calls build one specialization; steps
            # never run under it (calls of other, already built shapes are not held up)
            with self._lock:
                spec = self._specs.get(key)
                if spec is None:
                    spec = self._specs[key] = self._specialize(key)
        self._last = spec
        return spec

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        spec = self.specialize([f.shape for f in feeds])
        if spec.lowered.one_sample_checks:
            self._check_one_sample(spec.lowered.one_sample_checks, feeds)
        return spec.run(feeds)

    def _check_one_sample(self, checks, feeds) -> None:
        """ValueError, before anything runs, when a batch norm counting one sample at these
        shapes trains in this call: its flag is fed, so the compiled code (one module for
        both values) cannot know.  The flags are computed by the interpreter (usually a
        placeholder: no work)."""
        from ..ops.core import batch_stats_message
        from .interp import Schedule, evaluate
        flags = [n.inputs[1] for n, _ in checks]
        values = evaluate(Schedule(flags), {p.id: f for p, f in zip(self.program.inputs, feeds)})
        for (n, shape), flag in zip(checks, flags):
            if bool(values[flag.id]):
                raise ValueError(f"{batch_stats_message(shape)} (built at {n.where}); nothing "
                                 f"was updated")

    def _current(self):
        """The most recent specialization (free dims as 1 before any call)."""
        if self._last is None:
            shapes = [tuple(1 if d is None else d for d in p.shape) for p in self.program.inputs]
            return self.specialize(shapes)
        return self._last

    @property
    def source(self) -> str:
        """The generated text of the most recent specialization."""
        return self._current().source

    @property
    def kernel_of(self) -> dict[int, str]:
        """Program node id -> name of the (fused) kernel computing it."""
        return dict(self._current().lowered.kernel_of)

    def memory_report(self) -> dict:
        low = self._current().lowered
        return {"buffers": dict(low.buffers), "arena": low.arena_bytes, "peak": low.peak_bytes,
                "in_place_updates": list(low.in_place)}
