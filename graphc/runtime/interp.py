"""The numpy reference interpreter (Goodfellow et al., Algorithm 6.1).

Runs a schedule computed once: each node's value from its inputs' values through the op
registry's numpy reference.  It is the oracle every pass and backend is tested against.
"""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from ..ir import Tensor, toposort
from ..ops.registry import lookup


class Schedule:
    """A topological order of the nodes needed for ``roots`` plus, for each step, which values
    die after it (so memory is freed as soon as possible)."""

    def __init__(self, roots: Sequence[Tensor]):
        self.order = toposort(roots)
        root_ids = {r.id for r in roots}
        last_use: dict[int, int] = {}
        for step, node in enumerate(self.order):
            for i in node.inputs:
                last_use[i.id] = step
        self.frees: list[list[int]] = [[] for _ in self.order]
        for nid, step in last_use.items():
            if nid not in root_ids:
                self.frees[step].append(nid)


def evaluate(schedule: Schedule, feeds: dict[int, np.ndarray]) -> dict:
    """Run ``schedule``; ``feeds`` maps placeholder ids to arrays (already validated)."""
    values: dict[int, np.ndarray] = {}
    for step, node in enumerate(schedule.order):
        if node.op == "placeholder":
            val = feeds[node.id]
        else:
            opdef = lookup(node.op)
            try:
                with np.errstate(all="ignore"):
                    val = opdef.ref(node, *[values[i.id] for i in node.inputs])
            except (ValueError, IndexError) as e:
                shapes = ", ".join(str(np.shape(values[i.id])) for i in node.inputs)
                raise ValueError(f"{node.attrs.get('label', node.op)} ({node.name}, built at "
                                 f"{node.where}) failed on input shapes "
                                 f"{shapes}: {e}") from None
        val = np.asarray(val)
        if val.dtype != node.dtype:
            val = val.astype(node.dtype)
        values[node.id] = val
        for dead in schedule.frees[step]:
            values.pop(dead, None)
    return values


class NumpyExecutable:
    """The ``backend="numpy"`` implementation of a compiled function."""

    source = None

    def __init__(self, program):
        self.program = program
        self.schedule = Schedule(program.roots)
        # calls are serialized (as the C backend's): two concurrent steps would both read the
        # old parameter values and one update would be lost
        self._lock = threading.Lock()

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return self._run(feeds)

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        prog = self.program
        values = evaluate(self.schedule, {p.id: v for p, v in zip(prog.inputs, feeds)})
        # hand the caller arrays it owns: copy leaves' values (a parameter's storage, a fed
        # array), views of them (reshape, transpose), read-only broadcasts and repeated outputs
        leaves = {id(v) for v in feeds}
        leaves.update(id(lookup(n.op).ref(n)) for n in self.schedule.order
                      if n.op in ("parameter", "constant"))
        outs, given = [], set()
        for o in prog.outputs:
            v = values[o.id]
            if (o.is_leaf or not v.flags.owndata or not v.flags.writeable or id(v) in leaves
                    or id(v) in given):
                v = v.copy()
            given.add(id(v))
            outs.append(v)
        new = [values[v.id] for _, v in prog.updates]
        # every update has read the old values: now apply them all
        for (param, _), val in zip(prog.updates, new):
            param.attrs["store"].array = np.array(np.broadcast_to(val, param.shape),
                                                  dtype=param.dtype)
        return outs

    def memory_report(self) -> dict:
        """Bytes of each intermediate value (free dims counted as 1) and the peak live bytes."""
        return static_memory_report(self.schedule)


def static_memory_report(schedule: Schedule, batch: int = 1) -> dict:
    sizes, live, peak = {}, 0, 0
    alive: dict[int, int] = {}
    for step, node in enumerate(schedule.order):
        n = int(np.prod([batch if d is None else d for d in node.shape])) if node.shape else 1
        nbytes = n * np.dtype(node.dtype).itemsize
        if node.op not in ("placeholder", "parameter", "constant"):
            sizes[node.name] = nbytes
            alive[node.id] = nbytes
            live += nbytes
            peak = max(peak, live)
        for dead in schedule.frees[step]:
            live -= alive.pop(dead, 0)
    return {"buffers": sizes, "peak": peak}
