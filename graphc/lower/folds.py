"""Folds: nodes computed inside another node's kernel instead of by a kernel of their own.
Each pass returns which node joins which host; the driver (``lower``) decides which passes run.
A fold is kept only when the schedule with the node contracted into its host has no cycle
(``schedule``).  ``max_args`` bounds the operands + outputs of a kernel with members (GPU
argument lists)."""
from __future__ import annotations

from typing import Optional

from ..ir import Tensor
from ..ops.registry import data_inputs, lookup
from .model import VIEW_OPS, numel
from .plans import ew_parts

EW_PRODUCERS = ("ew", "broadcast_like")  # ops whose kernel is an elementwise expression


def schedules(order: list[Tensor], extra: dict, *hosts: dict) -> bool:
    """Whether ``order`` still has a schedule with every node of the maps ``hosts`` (member
    id -> host node; later maps win) run by its host's kernel."""
    merged = {m: h.id for found in hosts for m, h in found.items()}
    return schedule(order, extra, merged) is not None


def kernel_kind(node: Tensor) -> str:
    if node.op in ("ew", "broadcast_like", "fill_like"):
        return "ew"
    if node.op == "dense":
        return "dense"
    return {"matmul": "matmul", "reduce": "reduce", "rowwise": "rowwise", "layout": "transpose",
            "random": "random"}[lookup(node.op).kind]


def schedule(order: list[Tensor], extra: dict[int, set[int]],
              merged: Optional[dict[int, int]] = None) -> Optional[list[Tensor]]:
    """Topological order of ``order``'s nodes honouring data edges plus ``extra`` (node id ->
    ids that must run before it); stable with respect to ``order``.  None on a cycle.
    ``merged`` (node id -> id of the node it runs with) contracts nodes: they are left out of
    the result and their dependencies become their host's."""
    merged = merged or {}
    rep = lambda i: merged.get(i, i)  # noqa: E731
    nodes = [n for n in order if n.id not in merged]
    pos = {n.id: i for i, n in enumerate(nodes)}
    deps: dict[int, set[int]] = {n.id: set() for n in nodes}
    for n in order:
        # values only: a shape-only input (fill_like's) is known when the step is lowered
        deps[rep(n.id)] |= ({rep(i.id) for i in data_inputs(n)}
                            | {rep(e) for e in extra.get(n.id, ())})
    for nid, ds in deps.items():
        ds.discard(nid)
    order = nodes
    users: dict[int, list[int]] = {n.id: [] for n in order}
    for nid, ds in deps.items():
        for d in ds:
            users[d].append(nid)
    import heapq
    indeg = {nid: len(ds) for nid, ds in deps.items()}
    ready = [pos[nid] for nid, k in indeg.items() if k == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        n = order[heapq.heappop(ready)]
        out.append(n)
        for u in users[n.id]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, pos[u])
    return out if len(out) == len(order) else None


def fold_updates(order: list[Tensor], in_place: dict, extra: dict, base,
                 host_kinds=("ew",), max_args: int = 24) -> dict[int, Tensor]:
    """Member id -> host node for in-place elementwise updates folded into the kernel that
    computes one of their same-shape inputs (a kernel of one of ``host_kinds``).  A fold is
    made when (1) no parameter written by the group is read by the group at another index
    (broadcast reads, GEMM operands, a reduction's input), so element-by-element order cannot
    matter, and (2) the schedule with the member contracted into its host has no cycle.  A
    reduction's members read only same-shape operands and scalars (its final loop is flat)."""
    host_of: dict[int, Tensor] = {}
    writes: dict[int, set] = {}
    other_index_reads: dict[int, set] = {}
    count: dict[int, int] = {}

    def group_state(h: Tensor):
        if h.id not in writes:
            writes[h.id] = {in_place[h.id].id} if h.id in in_place else set()
            if h.op == "dense":
                reads = {base(t).id for t in h.inputs[:2]}
                reads |= {base(t).id for t in h.inputs[2:] if t.shape != h.shape}
            else:
                reads = {base(t).id for t in h.inputs if t.shape != h.shape}
            other_index_reads[h.id] = reads
            count[h.id] = len(h.inputs) + 1
        return writes[h.id], other_index_reads[h.id]

    seen: dict[int, list[Tensor]] = {}  # input id -> earlier updates reading it (siblings)
    for v in order:
        if v.id not in in_place or v.op != "ew":
            continue
        # hosts: a same-shape input's kernel, else the kernel of an earlier update reading the
        # same input (a bias's m and v both read the column sum of the gradient)
        same = [t for t in v.inputs if t.shape == v.shape and not t.is_leaf]
        candidates = [host_of.get(t.id, t) for t in same]
        candidates += [host_of.get(u.id, u) for t in same for u in seen.get(t.id, [])]
        for t in same:
            seen.setdefault(t.id, []).append(v)
        mine_w = in_place[v.id].id
        mine_r = {base(i).id for i in v.inputs if i.shape != v.shape}
        for h in candidates:
            if h.id == v.id or h.shape != v.shape or h.op in VIEW_OPS or h.is_leaf \
                    or kernel_kind(h) not in host_kinds:
                continue
            if kernel_kind(h) == "reduce" and any(
                    i.shape != v.shape and numel(i.shape) != 1 for i in v.inputs):
                continue
            w, r = group_state(h)
            group = {h.id} | {m for m, hh in host_of.items() if hh is h}
            if any(base(i).id in group and i.id not in group for i in v.inputs):
                continue  # a view of a group value: read it from memory, not the loop
            if (w | {mine_w}) & (r | mine_r) or count[h.id] + len(v.inputs) + 1 > max_args:
                continue
            trial = dict(host_of)
            trial[v.id] = h
            if not schedules(order, extra, trial):
                continue
            host_of[v.id] = h
            w.add(mine_w)
            r |= mine_r
            count[h.id] += len(v.inputs) + 1
            break
    return host_of


def fold_activations(order: list[Tensor], in_place: dict, host_of: dict, extra: dict,
                     max_args: int = 24) -> dict[int, Tensor]:
    """Activation id -> GEMM host: an elementwise node reading a ``dense`` node's output at the
    same index, which the fusion passes left apart because the backward pass reads that output
    too (the pre-activation z of gelu, silu, prelu, ...: activations without an output-form
    derivative), is computed in the GEMM's epilogue and written to its own buffer, next to z:
    one pass over z less.  One per GEMM, whose kernel hosts nothing else."""
    found: dict[int, Tensor] = {}
    taken = {h.id for h in host_of.values()}
    for v in order:
        if v.op != "ew" or v.id in in_place or v.id in host_of or v.id in taken:
            continue  # (a host of folded updates stays a kernel: its members run in it)
        hosts = [t for t in v.inputs if t.op == "dense" and t.shape == v.shape
                 and t.id not in in_place and t.id not in host_of]
        if len(hosts) != 1 or hosts[0].id in taken:
            continue
        h = hosts[0]
        if len(h.inputs) + len(v.inputs) + 2 > max_args:
            continue
        if not schedules(order, extra, host_of, found, {v.id: h}):
            continue  # an operand of the activation is computed after the GEMM's readers
        found[v.id] = h
        taken.add(h.id)
    return found


def fold_xent_grads(order: list[Tensor], extra: dict, host_of: dict, base
                    ) -> dict[int, Tensor]:
    """Cross-entropy gradient id -> the kernel of its loss: softmax_cross_entropy and
    softmax_cross_entropy_grad of the same logits and labels run as one kernel, one pass over
    the logits (max, exponentials and their sum once) writing both the losses and the gradient.
    Only when the gradient's row weights g are computed before the loss is needed: they do not
    depend on the loss values (the mean's seed 1/N reads only the losses' shape)."""
    found: dict[int, Tensor] = {}
    taken: set[int] = set()  # losses already hosting a gradient
    losses = [n for n in order if n.op == "softmax_cross_entropy" and n.id not in host_of]
    for d in order:
        if d.op != "softmax_cross_entropy_grad" or d.id in host_of:
            continue
        key = [base(t).id for t in d.inputs[:2]]
        for x in losses:
            if x.id in taken or [base(t).id for t in x.inputs] != key:
                continue
            if schedules(order, extra, host_of, found, {d.id: x}):
                found[d.id] = x
                taken.add(x.id)
                break
    return found



def group_max_pieces(node: Tensor, base) -> Optional[int]:
    """``pieces`` when ``node`` is a max over the last axis of a view (rows, ..., pieces) of a
    ``dense`` node's (rows, units * pieces) output (how ``maxout`` of a GEMM's output reaches
    the lowering): every group of ``pieces`` consecutive columns of a row of the GEMM's output
    is one output of the max, in row-major order.  Else None."""
    if node.op != "max" or len(node.inputs) != 1:
        return None
    x = node.inputs[0]
    host = base(x)
    shape = tuple(x.shape)
    if host.op != "dense" or len(shape) < 2 or tuple(node.attrs["axes"]) != (len(shape) - 1,):
        return None
    rows, cols = host.shape
    if shape[0] != rows or numel(shape[1:]) != cols or shape[-1] < 1 or node.dtype != host.dtype:
        return None
    return int(shape[-1])


def fold_group_max(order: list[Tensor], in_place: dict, host_of: dict, extra: dict, base
                   ) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """Max id -> GEMM host: a maxout of a ``dense`` node's output (``group_max_pieces``) is
    computed by the GEMM's kernel, which still writes z (the max's gradient reads it), as a
    ``GroupMax``.  Whatever the shapes (which of the C GEMM's paths runs, and whether its tiles
    hold whole groups, depends on the machine's vector width), the header computes every group
    exactly once, so the fold depends on the graph only.  One per GEMM; not for a GEMM updating
    a parameter in place or hosting updates, nor for a max that hosts updates or is one.
    Returns (max id -> host, id of each view between host and max -> host): the views are
    scheduled with the host too (the max reads z through them; left apart, host -> view -> max
    contracted into the host would be a cycle)."""
    found: dict[int, Tensor] = {}
    views: dict[int, Tensor] = {}
    hosting = {h.id for h in host_of.values()}
    hosting_updates = {h.id for m, h in host_of.items() if m in in_place}
    taken: set[int] = set()
    for v in order:
        if v.id in in_place or v.id in host_of or v.id in hosting \
                or group_max_pieces(v, base) is None:
            continue
        h = base(v.inputs[0])
        if h.id in in_place or h.id in hosting_updates or h.id in taken:
            continue
        chain, t = {}, v.inputs[0]
        while t is not h:
            chain[t.id] = h
            t = t.inputs[0]
        if not schedules(order, extra, host_of, found, views, chain, {v.id: h}):
            continue
        found[v.id] = h
        views.update(chain)
        taken.add(h.id)
    return found, views


def arithmetic(expr) -> bool:
    """Whether ``expr`` is plain arithmetic (sums, products, integer powers, |x|, max, min,
    comparisons, selections): no libm call, cheap to compute twice."""
    import sympy as sp

    from ..symbolic import Max2, Min2
    plain = (sp.Symbol, sp.Number, sp.Add, sp.Mul, sp.Abs, sp.sign, sp.Piecewise, Max2, Min2,
             sp.functions.elementary.piecewise.ExprCondPair, sp.core.relational.Relational,
             sp.logic.boolalg.BooleanFunction, sp.logic.boolalg.BooleanAtom)
    return all(isinstance(e, plain) or (isinstance(e, sp.Pow) and e.exp.is_Integer)
               for e in sp.preorder_traversal(sp.sympify(expr)))


def fold_ew_into_reduce(order: list[Tensor], in_place: dict, host_of: dict, extra: dict,
                        readers: dict, pinned: set, base, max_args: int = 24
                        ) -> dict[int, list[Tensor]]:
    """Reduction id -> [the elementwise node it computes as its prologue, then the views
    between that node and the reduction, which run with it]: the node is one of
    ``EW_PRODUCERS`` whose only reader is the reduction (directly or through views), that
    is no program output or update value (``pinned``: bases of those), no in-place update,
    no host or member of a fold.  Through a view, its operands must be full-shape or one
    element (the view keeps row-major order, not the operands' broadcast strides).  The
    reduction's members (a bias's updates) must not write what the prologue reads: a task
    stores its outputs' updates while others still load.  Operands and members together stay
    within ``max_args``.  A logsumexp folds plain arithmetic only (``arithmetic``)."""
    found: dict[int, list[Tensor]] = {}
    hosting = {h.id for h in host_of.values()}
    members: dict[int, list[Tensor]] = {}
    for m, h in host_of.items():
        members.setdefault(h.id, []).append(m)
    by_id = {n.id: n for n in order}
    merged = {m: h.id for m, h in host_of.items()}
    for r in order:
        if r.is_leaf or r.op in VIEW_OPS or r.op in EW_PRODUCERS or r.op == "dense" \
                or lookup(r.op).kind != "reduce" or r.id in host_of or r.id in in_place:
            continue
        e = base(r.inputs[0])
        if e.op not in EW_PRODUCERS or e.id in pinned or e.id in in_place or e.id in host_of \
                or e.id in hosting or readers.get(e.id) != {r.id}:
            continue
        if r.op == "logsumexp" and not arithmetic(ew_parts(e)[0]):
            # it reads each element twice (the max, then the exponentials): libm calls made
            # twice cost more than the buffer (logsumexp(tanh(x) * y, axis=0) on (4096, 1024),
            # 1 thread: 6.6-7.6 ms apart, 11.4-12.8 ms folded)
            continue
        if tuple(e.shape) != tuple(r.inputs[0].shape) and any(
                tuple(t.shape) != tuple(e.shape) and numel(t.shape) != 1 for t in e.inputs):
            continue
        written = {in_place[m].id for m in members.get(r.id, []) if m in in_place}
        if any(base(t).id in written for t in e.inputs):
            continue
        args = len(e.inputs) + 1 + sum(len(by_id[m].inputs) + 1 for m in members.get(r.id, [])
                                        if m in by_id)
        if args > max_args:
            continue
        chain, t = [], r.inputs[0]
        while t is not e:
            chain.append(t)
            t = t.inputs[0]
        trial = {**merged, **{v.id: r.id for v in chain}, e.id: r.id}
        if schedule(order, extra, trial) is None:
            continue
        merged = trial
        found[r.id] = [e] + chain[::-1]
    return found


def fold_scalars(order: list[Tensor], host_of: dict, extra: dict, max_args: int = 24
                 ) -> dict[int, Tensor]:
    """Scalar id -> host: elementwise nodes of shape () computed from shape-() operands of
    their own dtype (an optimizer's per-parameter step counters and bias corrections, a
    learning-rate schedule) run as members of one kernel per dtype instead of one kernel
    each (on a GPU, one launch each).  In-place updates among them write their parameter:
    every load of the single iteration precedes its stores, so a member reading a parameter
    that another member writes sees the old value, as a kernel ordered before the write
    would.  One dtype per kernel, so each computes in the type it would alone.  At most
    ``max_args`` distinct operands + outputs per kernel; nodes already hosting or hosted are
    left."""
    found: dict[int, Tensor] = {}
    hosting = {h.id for h in host_of.values()}
    groups: dict[str, tuple[Tensor, set, set]] = {}  # dtype -> (host, outputs, operands)
    for v in order:
        if v.op != "ew" or tuple(v.shape) != () or v.id in host_of or v.id in hosting \
                or any(tuple(i.shape) != () or i.dtype != v.dtype for i in v.inputs):
            continue
        group = groups.get(v.dtype)
        if group is not None:
            host, outs, operands = group
            reads = {i.id for i in v.inputs} - outs
            if len(outs) + 1 + len(operands | reads) <= max_args \
                    and schedules(order, extra, host_of, found, {v.id: host}):
                found[v.id] = host
                outs.add(v.id)
                operands |= reads
                continue
            if len(outs) + 1 + len(operands | reads) <= max_args:
                continue  # a cycle through this group: v keeps its own kernel
        groups[v.dtype] = (v, {v.id}, {i.id for i in v.inputs})
    return found
