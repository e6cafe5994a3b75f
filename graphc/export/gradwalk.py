"""Algorithm 6.2's grad_table walk, recovered for display.

For each gradient seed ``fill_like(cost, 1.0)`` in a graph, ``gc.grad``'s walk is replayed
(``graphc.autodiff.backprop`` on the same cost, with respect to every float parameter and
placeholder) and each grad_table entry it builds is matched, by structure (op, attributes,
inputs), to a node of the exported graph.  A step is one forward node, in the reverse
topological order the walk visits them, with the exported node holding d cost / d node and the
backward nodes first needed to compute it.  Replaying builds throwaway nodes only; nothing of
the exported graph changes.  Graphs that were optimized (a compiled function's program) may not
match: their backward nodes then come in one final step.
"""
from __future__ import annotations

from ..ir import attrs_key, is_float, toposort
from .graph import GraphView, gradient_seeds


class _Keys:
    """Structural identity of nodes: leaves by node id (constants by value), others by
    (op, attrs, input keys); interned to small ints."""

    def __init__(self):
        self.table: dict = {}
        self.memo: dict = {}

    def _pending(self, node) -> list:
        """``node``'s ancestors without a key yet, dependencies first (stops at known ones)."""
        order, seen, stack = [], {node.id}, [(node, 0)]
        while stack:
            n, i = stack.pop()
            if i < len(n.inputs):
                stack.append((n, i + 1))
                c = n.inputs[i]
                if c.id not in seen and c.id not in self.memo:
                    seen.add(c.id)
                    stack.append((c, 0))
            else:
                order.append(n)
        return order

    def key(self, node) -> int:
        if node.id in self.memo:
            return self.memo[node.id]
        for n in self._pending(node):
            if n.op in ("placeholder", "parameter"):
                k = ("leaf", n.id)
            else:
                try:
                    ak = attrs_key(n.attrs)
                    hash(ak)
                except TypeError:
                    ak = ("node", n.id)
                k = (n.op, n.dtype, n.shape, ak, tuple(self.memo[i.id] for i in n.inputs))
            self.memo[n.id] = self.table.setdefault(k, len(self.table))
        return self.memo[node.id]


def grad_walk(view: GraphView) -> list:
    """Steps ``{"node": forward id, "grad": exported id, "lit": [backward ids]}``; a last step
    with ``node`` None holds backward nodes no step claimed."""
    from ..autodiff import backprop

    roles = view.roles
    backward = [n for n in view.nodes if roles.get(n.id) == "backward"]
    if not backward:
        return []
    by_id = view.by_id
    keys = _Keys()
    exported = {}
    for n in view.nodes:
        exported.setdefault(keys.key(n), n.id)
    lit: set = set()
    steps = []
    for seed in gradient_seeds(view.nodes):
        cost = seed.inputs[0]
        if cost.shape != () or not is_float(cost.dtype):
            continue
        order = toposort([cost])
        wrt = [n for n in order if n.op in ("parameter", "placeholder") and is_float(n.dtype)]
        try:
            table = backprop(cost, wrt)
        except Exception:  # a graph this walk cannot replay: fall back to one final step
            continue
        for n in reversed(order):
            g = table.get(n.id)
            if g is None:
                continue
            gid = exported.get(keys.key(g))
            if gid is None or roles.get(gid) not in ("backward", "update"):
                continue
            # the backward nodes computing it that no earlier step showed
            new, stack = [], [gid]
            while stack:
                i = stack.pop()
                if i in lit or roles.get(i) != "backward":
                    continue
                lit.add(i)
                new.append(i)
                stack.extend(x.id for x in by_id[i].inputs)
            steps.append({"node": n.id, "grad": gid, "lit": sorted(new)})
    rest = [n.id for n in backward if n.id not in lit]
    if rest:
        steps.append({"node": None, "grad": None, "lit": rest})
    return steps
