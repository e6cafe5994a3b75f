"""What every exporter starts from: the nodes of a graph, their roles, and ``to_networkx``.

``collect`` accepts what users hold (a tensor, a list of tensors, or a compiled ``gc.compile``
function) and returns a ``GraphView``: all nodes in a topological order (inputs, and the
parameters and new values of a node's implicit updates, before the node), the outputs, the
placeholders, the explicit updates and the fused-kernel map.

Roles are recovered from structure, since ``gc.grad`` leaves no marker on the nodes it builds:

- ``input`` / ``parameter`` / ``constant``: placeholder, parameter and constant leaves;
- ``backward``: nodes that depend on a gradient seed (``fill_like(cost, 1.0)``, the
  ``ones_like(cost)`` Algorithm 6.2 starts from), and nodes built only to feed them (e.g. the
  ``W.T`` of a matmul's gradient), i.e. ancestors of those that the cost does not need;
- ``update``: new values of parameter updates (explicit ones, or implicit ``effects`` such as
  batch-norm statistics), nodes computed from new values, and steps feeding only those that
  read an updated parameter or are one-input elementwise (SGD's ``lr * g``, Adam's
  ``beta1 * m``);
- ``forward``: everything else.
"""
from __future__ import annotations

import bz2
import gzip
import io
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..ir import Tensor, format_shape

ROLES = ("input", "parameter", "constant", "forward", "backward", "update")


@dataclass
class GraphView:
    nodes: list                      # Tensors, topological (dependencies first)
    outputs: list                    # Tensors
    inputs: list                     # placeholders
    updates: list                    # (parameter, new value) pairs, explicit and implicit
    kernels: dict = field(default_factory=dict)   # node id -> fused kernel name
    roles: dict = field(default_factory=dict)     # node id -> role

    @property
    def by_id(self) -> dict:
        return {n.id: n for n in self.nodes}


def node_label(n: Tensor) -> str:
    """The op a person reads: the ``ew`` label ("relu", "add", "relu'") or the op name."""
    if n.op == "ew":
        return str(n.attrs.get("label", "ew"))
    return n.op


def display_name(n: Tensor) -> str:
    """The user's name, or "" when the node has only its automatic ``op_id`` name."""
    return n._name if getattr(n, "_name", None) is not None else ""


def _deps(n: Tensor) -> list:
    out = list(n.inputs)
    for p, v in n.effects:
        out.append(p)
        out.append(v)
    return out


def full_toposort(roots: Iterable[Tensor]) -> list:
    """Every node ``roots`` depend on through inputs and implicit updates, dependencies first
    (iterative, deterministic)."""
    order, seen = [], set()
    for root in roots:
        if root.id in seen:
            continue
        stack = [(root, iter(_deps(root)))]
        seen.add(root.id)
        while stack:
            node, it = stack[-1]
            for d in it:
                if d.id not in seen:
                    seen.add(d.id)
                    stack.append((d, iter(_deps(d))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _is_compiled(obj) -> bool:
    prog = getattr(obj, "program", None)
    return prog is not None and hasattr(prog, "outputs") and hasattr(prog, "updates")


def _kernel_map(obj) -> dict:
    for holder in (obj, getattr(obj, "_exe", None)):
        km = getattr(holder, "kernel_of", None) if holder is not None else None
        if isinstance(km, dict):
            return {int(k): str(v) for k, v in km.items() if v is not None}
    return {}


def _as_tensors(what, outputs) -> list:
    items = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    for t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: expected graphc Tensors, got {type(t).__name__}")
    return items


def _check_updates(updates) -> list:
    out = []
    for item in updates or []:
        try:
            p, v = item
        except (TypeError, ValueError):
            raise TypeError("updates must be a list of (parameter, new_value) pairs") from None
        if not isinstance(p, Tensor) or p.op != "parameter" or not isinstance(v, Tensor):
            raise TypeError(f"update ({p!r}, {v!r}) is not a (parameter, tensor) pair")
        out.append((p, v))
    return out


def collect(outputs, inputs=None, updates=None, kernels=None) -> GraphView:
    """The ``GraphView`` of ``outputs``: a tensor, a list of tensors, or a compiled function
    (then its optimized program: outputs, updates, inputs, and ``kernel_of`` if the backend
    provides one)."""
    kmap: dict = {}
    if _is_compiled(outputs):
        f = outputs
        outs = list(f.program.outputs)
        if updates is None:
            updates = list(f.program.updates)
        if inputs is None:
            inputs = list(getattr(f.program, "inputs", []) or getattr(f, "inputs", []))
        kmap = _kernel_map(f)
    else:
        outs = _as_tensors("export", outputs)
    ups = _check_updates(updates)
    if kernels:
        kmap.update({int(k): str(v) for k, v in dict(kernels).items() if v is not None})
    roots = outs + [v for _, v in ups] + [p for p, _ in ups]
    nodes = full_toposort(roots)
    if inputs is None:
        ins = sorted((n for n in nodes if n.op == "placeholder"), key=lambda n: n.id)
    else:
        ins = _as_tensors("export inputs", inputs)
        for p in ins:
            if p.op != "placeholder":
                raise TypeError(f"export: inputs must be placeholders, got {p!r}")
        known = {n.id for n in nodes}
        nodes = nodes + [p for p in ins if p.id not in known]
        # every placeholder the graph needs is an input (a graph read back must be callable):
        # those not given follow the given ones, in creation order
        given = {p.id for p in ins}
        ins = ins + sorted((n for n in nodes if n.op == "placeholder" and n.id not in given),
                           key=lambda n: n.id)
    all_updates = list(ups)
    done = {p.id for p, _ in ups}
    for n in nodes:
        for p, v in n.effects:
            if p.id not in done:
                done.add(p.id)
                all_updates.append((p, v))
    view = GraphView(nodes, outs, ins, all_updates, kmap)
    view.roles = compute_roles(view)
    return view


# -- roles ----------------------------------------------------------------------------------

def gradient_seeds(nodes: Sequence[Tensor]) -> list:
    """Where gc.grad starts: the ``fill_like(cost, 1.0)`` nodes it marks ``grad_seed``; for
    graphs without the mark (older JSON), any scalar float ``fill_like(cost, value=1.0)``."""
    marked = [n for n in nodes if n.op == "fill_like" and n.attrs.get("grad_seed")]
    if marked:
        return marked
    out = []
    for n in nodes:
        if n.op == "fill_like" and len(n.inputs) == 1 and n.shape == () \
                and n.dtype.startswith("float"):
            try:
                if float(n.attrs.get("value")) == 1.0:
                    out.append(n)
            except (TypeError, ValueError):
                pass
    return out


def _ancestors(start_ids: Iterable[int], by_id: dict) -> set:
    seen = set()
    stack = [i for i in start_ids if i in by_id]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack.extend(x.id for x in by_id[i].inputs if x.id not in seen)
    return seen


def compute_roles(view: GraphView) -> dict:
    nodes, by_id = view.nodes, view.by_id
    users: dict = {n.id: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i.id, []).append(n)
    seeds = gradient_seeds(nodes)
    seed_ids = {s.id for s in seeds}
    if seeds:
        protected = _ancestors({s.inputs[0].id for s in seeds}, by_id)
    else:
        protected = _ancestors({o.id for o in view.outputs}, by_id)
    tainted: set = set()
    for n in nodes:  # topological: inputs first
        if n.id in seed_ids or any(i.id in tainted for i in n.inputs):
            tainted.add(n.id)
    grad_side = _ancestors(tainted, by_id)

    roles: dict = {}
    for n in nodes:
        if n.op == "placeholder":
            roles[n.id] = "input"
        elif n.op == "parameter":
            roles[n.id] = "parameter"
        elif n.op == "constant" or n.is_leaf:
            roles[n.id] = "constant"
        elif n.id in tainted:
            roles[n.id] = "backward"
        elif seeds and n.id in protected:
            roles[n.id] = "forward"
        elif n.id in grad_side or n.op == "fill_like":
            roles[n.id] = "backward"
        else:
            roles[n.id] = "forward"

    # updates: new values, what is computed from new values (Adam's m_hat from m), and steps
    # feeding only those that read an updated parameter (beta1 * m) or are one-input
    # elementwise (lr * g, g ** 2).  A gradient times a parameter (gamma * g in batch norm's
    # backward pass) stays backward.
    targets = {p.id for p, _ in view.updates}
    values = {v.id for _, v in view.updates}
    feeding = _ancestors(values, by_id)
    upd: set = set()
    for n in nodes:
        if n.is_leaf or n.id not in feeding or n.id in protected:
            continue
        if n.id in values or any(i.id in upd for i in n.inputs):
            upd.add(n.id)
    changed = True
    while changed:
        changed = False
        for n in reversed(nodes):
            if n.is_leaf or n.id in upd or n.id not in feeding or n.id in protected:
                continue
            us = users.get(n.id, [])
            if not us or not all(u.id in upd for u in us):
                continue
            tensor_inputs = [i for i in n.inputs if i.op != "constant"]
            if any(i.id in targets for i in n.inputs) or (n.op == "ew" and len(tensor_inputs) == 1):
                upd.add(n.id)
                changed = True
    for i in upd:
        roles[i] = "update"
    return roles


# -- networkx -------------------------------------------------------------------------------

def to_networkx(outputs, inputs=None, updates=None, kernels=None):
    """A ``networkx.DiGraph`` with one node per graph node (keyed by node id).

    Node attributes: ``op`` (the ew label such as "relu", else the op name), ``raw_op``,
    ``shape`` (tuple), ``dtype``, ``name``, ``role``, ``kernel`` (fused kernel name or None),
    ``where`` (the user's file:line), ``updates`` (name of the parameter a new value is
    written to, or None), ``is_output``.  Edge attributes: ``shape`` and ``dtype`` of the
    tensor flowing, ``index`` (first input position) and ``indices`` (all of them).

    ``outputs``: a tensor, a list, or a compiled function (its optimized program, with its
    updates and, when the backend exposes ``kernel_of``, fused kernels).  ``kernels``: an
    optional mapping node id -> kernel name."""
    import networkx as nx

    view = outputs if isinstance(outputs, GraphView) else collect(outputs, inputs, updates,
                                                                  kernels)
    g = nx.DiGraph()
    out_ids = {o.id for o in view.outputs}
    writes = {v.id: p.name for p, v in view.updates}
    for n in view.nodes:
        g.add_node(n.id, op=node_label(n), raw_op=n.op, shape=n.shape, dtype=n.dtype,
                   name=n.name, role=view.roles[n.id], kernel=view.kernels.get(n.id),
                   where=n.where, updates=writes.get(n.id), is_output=n.id in out_ids)
    for n in view.nodes:
        for k, i in enumerate(n.inputs):
            if g.has_edge(i.id, n.id):
                g.edges[i.id, n.id]["indices"] += (k,)
            else:
                g.add_edge(i.id, n.id, shape=i.shape, dtype=i.dtype, index=k, indices=(k,))
    g.graph["outputs"] = [o.id for o in view.outputs]
    g.graph["inputs"] = [p.id for p in view.inputs]
    g.graph["updates"] = [(p.id, v.id) for p, v in view.updates]
    return g


def to_graphml(outputs, path, inputs=None, updates=None, kernels=None) -> None:
    """Write the graph as GraphML through networkx (shapes and tuples as strings, absent
    values as "")."""
    import networkx as nx

    g = to_networkx(outputs, inputs, updates, kernels)
    h = nx.DiGraph()
    for i, a in g.nodes(data=True):
        h.add_node(i, **{k: _graphml_value(k, v) for k, v in a.items()})
    for s, t, a in g.edges(data=True):
        h.add_edge(s, t, **{k: _graphml_value(k, v) for k, v in a.items()})
    h.graph["outputs"] = " ".join(map(str, g.graph["outputs"]))
    h.graph["inputs"] = " ".join(map(str, g.graph["inputs"]))
    buf = io.BytesIO()
    nx.write_graphml(h, buf)
    # XML parsers turn a literal CR (and CR LF) in text into LF, so a name "a\rb" read back
    # as "a\nb": write every CR as the character reference &#13;, which parsers keep.  A CR
    # byte in the UTF-8 output can only come from a value (the writer's own line ends are LF)
    data = buf.getvalue().replace(b"\r", b"&#13;")
    # .gz / .bz2 paths compressed, as networkx's own writer does
    opener = {"gz": gzip.open, "bz2": bz2.open}.get(str(path).rsplit(".", 1)[-1], open)
    with opener(path, "wb") as f:
        f.write(data)


# characters XML 1.0 cannot hold (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF):
# written as they are, they make a file no XML parser (read_graphml included) reads back
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(s: str) -> str:
    return _NOT_XML.sub("\ufffd", s)


def _graphml_value(key, v):
    if v is None:
        return ""
    if key == "shape":
        return format_shape(tuple(v))
    if isinstance(v, tuple):
        return _xml_text(" ".join(map(str, v)))
    if isinstance(v, str):
        return _xml_text(v)
    if isinstance(v, (bool, int, float)):
        return v
    return _xml_text(str(v))
