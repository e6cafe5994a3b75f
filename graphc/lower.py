"""Lowering: an optimized program + the concrete shapes of one call -> kernels and buffers.

The result (``Lowered``) is backend-neutral: an ordered list of ``Kernel`` records (which graph
node each computes, of what kind, reading and writing which ``Storage``) plus the buffer plan.
The C renderer and the GPU renderer turn the same ``Lowered`` into their own syntax.

Storage: placeholders, parameters, constants and outputs live in *slots* (pointers passed on
every call); intermediates live in one *arena* whose offsets come from a liveness-based plan, so
dead buffers are reused.  View ops (reshape & co.) alias their input.  A parameter update whose
value is computed elementwise is written in place when no later kernel reads the old value.

Update folding: an optimizer's in-place updates of one parameter (Adam's m, v and p, momentum's
velocity and p) are computed as *members* of one elementwise kernel (the first update's loop):
one pass over the gradient and the state instead of one loop per update.  A single update
(SGD's) already is the gradient GEMM's epilogue (fusion.fuse_dense); folding several into a
GEMM epilogue is supported but off by default (see FOLD_INTO_GEMM).  A bias's updates join the
final loop of the reduction computing its gradient (the column sum; FOLD_INTO_REDUCE).

Maxout folding: a max over groups of consecutive columns of a GEMM's output (``gc.maxout``,
``Dense(activation="maxout")``) is computed by the GEMM's kernel from the rows of C it has just
stored (``GroupMax``; gc_gemm.h's row hook), next to z, which the max's gradient reads
(FOLD_GROUP_MAX, C only).

Prologue folding: an elementwise node whose only reader is a reduction (mse's squared
differences, a layer norm backward's g * xhat) is computed by the reduction at each element it
loads (``Prologue``); its kernel and buffer disappear.  ``reduce_read`` describes what a
reduction reads (operands, strides, expression) for both renderers (FOLD_EW_INTO_REDUCE).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .fusion import BACKEND_PIPELINE, concretize
from .ir import Tensor, consumers, toposort
from .ops.registry import data_inputs, lookup
from .program import Program

VIEW_OPS = {"reshape", "reshape_like", "expand_dims", "squeeze", "identity", "stop_gradient"}
ALIGN = 64


@dataclass(frozen=True)
class Storage:
    where: str          # "slot" or "arena"
    index: int          # slot index, or byte offset in the arena
    nbytes: int


@dataclass
class Slot:
    kind: str           # "input", "param", "const", "output"
    node: Tensor


@dataclass
class Kernel:
    name: str
    kind: str           # "ew", "dense", "matmul", "reduce", "rowwise", "transpose", "random",
                        # "copy"
    node: Tensor        # the graph node computed (for copies: the source node)
    dst: Storage
    srcs: list          # Storage of each of node.inputs (None for shape-only inputs)
    attrs: dict = field(default_factory=dict)
    members: list = field(default_factory=list)  # Member updates computed alongside
                                                 # (ew, dense, reduce)
    group_max: Optional["GroupMax"] = None       # dense: a maxout of its output, computed too
    prologue: Optional["Prologue"] = None        # reduce: its input computed per element


@dataclass
class Member:
    """An elementwise node computed by its host kernel, element by element, as an extra output
    (see ``fused_plan``): an in-place update, or (``in_place`` False) the activation of a GEMM's
    output written to its own buffer."""
    node: Tensor
    dst: Storage
    srcs: list          # Storage of each of node.inputs
    in_place: bool = True


@dataclass
class GroupMax:
    """A maxout computed by a GEMM kernel from the rows of C it stores (see
    ``_fold_group_max``): ``node`` is a ``max`` over the last axis of a (rows, ..., pieces) view
    of the GEMM's (rows, units * pieces) output, so out[i, u] = max_p C[i, u * pieces + p]."""
    node: Tensor
    dst: Storage
    pieces: int


@dataclass
class Prologue:
    """An elementwise node computed by the reduction that consumes it, at each element the
    reduction loads (see ``_fold_ew_into_reduce``): its buffer is never written.  ``srcs``:
    the Storage of each of ``node``'s inputs."""
    node: Tensor
    srcs: list


@dataclass
class ReduceRead:
    """What a reduction kernel reads, for every renderer (``reduce_read``): its input's axes
    with size-1 ones dropped and neighbours of one kind merged where every operand allows it,
    as groups [is_reduced, size] (at least one); the operands (Tensor, Storage) with each
    one's element stride per group (0: broadcast along it); and the value of an element:
    ``expr`` of the arguments A[j] = operand j's element, computed in the elementwise kernels'
    type and stored as ``node``'s dtype (what a buffer would have held), or None for operand
    0 itself (no prologue)."""
    groups: list
    operands: list
    strides: list
    expr: object
    node: Tensor


@dataclass
class FusedPlan:
    """What a kernel with members computes per element, for every renderer: the distinct
    operands read, the outputs written (the host first), and per output its expression with
    what each argument A[j] is: ("in", operand index), ("val", index of an earlier output,
    read from the value computed in the same iteration) or ("acc", 0) (a GEMM's accumulator).
    Renderers load everything before they store anything, so in-place outputs never feed
    another output's loads in the same iteration."""
    operands: list      # (Tensor, Storage)
    outputs: list       # (Tensor, Storage)
    exprs: list         # (sympy expression, [(kind, index) per argument])


@dataclass
class Lowered:
    inputs: list[Tensor]            # concrete placeholders, call order
    slots: list[Slot]
    kernels: list[Kernel]
    arena_bytes: int
    outputs: list[tuple[int, Tensor]]          # (slot, node) per program output
    buffers: dict[str, int]                    # planned intermediate name -> bytes
    in_place: list[str]                        # parameters updated in place
    label_checks: list[tuple[int, int]] = field(default_factory=list)  # (input slot, classes)
    # (kernel name, classes, input slot of fed labels or None) of every cross-entropy kernel: on
    # the C backend it checks its labels itself and ends the step with status 1 + index
    kernel_label_checks: list[tuple[str, int, Optional[int]]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # node id -> deterministic display name
    kernel_of: dict[int, str] = field(default_factory=dict)  # program node id -> kernel name

    def name(self, node: Tensor) -> str:
        return self.names.get(node.id, node.name)

    @property
    def peak_bytes(self) -> int:
        return self.arena_bytes + sum(nbytes(n) for _, n in self.outputs)


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def nbytes(t: Tensor) -> int:
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize if t.shape \
        else np.dtype(t.dtype).itemsize


def sanitize(text: str, limit: int = 40) -> str:
    """An identifier fragment from arbitrary text (node names and labels reach generated code
    only through here or inside comments made safe by ``comment``)."""
    out = re.sub(r"[^0-9A-Za-z_]+", "_", text)[:limit].strip("_")
    return out or "x"


def comment(text: str) -> str:
    """Text safe inside a C block comment (no comment terminators, no line breaks)."""
    text = re.sub(r"[^\x20-\x7e]", "?", text).replace("\\", "/")
    return text.replace("*/", "* /").replace("/*", "/ *")


def ew_parts(node: Tensor):
    """(SymPy expression, input tensors) an elementwise kernel computes for ``node``: ``ew``
    nodes carry theirs; broadcast_like copies its first input; fill_like has no inputs."""
    if node.op == "ew":
        return node.attrs["expr"], list(node.inputs)
    if node.op == "broadcast_like":
        from .symbolic import A
        return A[0], [node.inputs[0]]
    if node.op == "fill_like":
        import sympy as sp
        return sp.Float(node.attrs["value"]), []
    raise AssertionError(node.op)


def strides_for(shape: tuple, out_shape: tuple) -> list[int]:
    """Element strides of a tensor of ``shape`` indexed by an output index of ``out_shape``
    under numpy broadcasting (0 along broadcast axes)."""
    nd = len(out_shape)
    shape = (1,) * (nd - len(shape)) + tuple(shape)
    strides, acc = [0] * nd, 1
    for d in range(nd - 1, -1, -1):
        strides[d] = 0 if shape[d] == 1 and out_shape[d] != 1 else acc
        acc *= shape[d]
    return strides


def collapse(out_shape: tuple, operand_strides: list[list[int]]):
    """Merge adjacent axes that every operand walks contiguously (fewer, longer loops)."""
    dims = list(out_shape)
    strides = [list(s) for s in operand_strides]
    d = len(dims) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * dims[d + 1] for s in strides):
            dims[d] *= dims[d + 1]
            for s in strides:
                s[d] = s[d + 1]
                del s[d + 1]
            del dims[d + 1]
        d -= 1
    return dims, strides


def merge_groups(shape: tuple, axes, operand_strides: list[list[int]]):
    """The axes of a reduction's input ``shape`` as groups [is_reduced, size] (renderers loop
    over these): neighbours of the same kind merge when every operand walks the two
    contiguously (a per-row statistic (N, 1) broadcast over (N, C) has stride 0 along C, 1
    along N: they stay two loops).  Size-1 axes index nothing and are dropped; at least one
    group.  Returns (groups, per operand the stride of each group's innermost axis)."""
    axes = set(axes)
    keep = [d for d, size in enumerate(shape) if size != 1]
    groups: list[list] = []
    strides: list[list[int]] = [[] for _ in operand_strides]
    for d in keep:
        red = d in axes
        if groups and groups[-1][0] == red and all(
                s[d] * shape[d] == g[-1] for s, g in zip(operand_strides, strides)):
            groups[-1][1] *= shape[d]
            for s, g in zip(operand_strides, strides):
                g[-1] = s[d]
        else:
            groups.append([red, shape[d]])
            for s, g in zip(operand_strides, strides):
                g.append(s[d])
    if not groups:
        return [[False, 1]], [[0] for _ in operand_strides]
    return groups, strides


def reduce_read(k: "Kernel") -> ReduceRead:
    """The ``ReduceRead`` of reduction kernel ``k``: its input buffer, or the operands and
    expression of its prologue with their strides relative to the reduction's input shape
    (a view of the folded node reads full-shape or one-element operands only: row-major
    order is the view's too)."""
    x = k.node.inputs[0]
    shape, axes = tuple(x.shape), k.node.attrs["axes"]
    if k.prologue is None:
        groups, strides = merge_groups(shape, axes, [strides_for(shape, shape)])
        return ReduceRead(groups, [(x, k.srcs[0])], strides, None, x)
    e = k.prologue.node
    expr, inputs = ew_parts(e)
    from .symbolic import A
    operands, index, subs = [], {}, {}
    for j, t in enumerate(inputs):
        st = k.prologue.srcs[e.inputs.index(t)]
        key = (st.where, st.index, tuple(t.shape), t.dtype)
        if key not in index:
            index[key] = len(operands)
            operands.append((t, st))
        subs[A[j]] = A[index[key]]
    expr = expr.xreplace(subs) if subs else expr
    if tuple(e.shape) == shape:
        full = [strides_for(t.shape, shape) for t, _ in operands]
    else:  # through a view: contiguous or one element (checked by the fold)
        full = [strides_for(shape, shape) if _numel(t.shape) > 1 else [0] * len(shape)
                for t, _ in operands]
    groups, strides = merge_groups(shape, axes, full)
    return ReduceRead(groups, operands, strides, expr, e)


TILE_BYTES = 64   # bytes a transpose tile row spans on the C backend (one cache line)
ROW_BYTES = 64    # contiguous runs at least this long are copied as rows, not tiled
BLOCK_BYTES = 32768  # a tiled transpose whose (b, a) block spans at most this much of
                     # the source and of the destination is one tile (plain loops)


@dataclass(frozen=True)
class TransposePlan:
    """How a transpose moves its elements, shared by the C and GPU renderers.

    ``dims`` / ``src`` / ``dst``: the loop axes (in output order, size-1 axes dropped, axes
    contiguous on both sides merged) and the element strides of each in the source and the
    (contiguous) destination.  ``run``: elements contiguous on both sides that each index of
    ``dims`` copies (the kept last axis, else 1).  Kinds:

    * ``copy``: the permutation is the identity once merged (``dims`` empty): one block copy.
    * ``rows``: the last axis stays, its runs are at least ``ROW_BYTES``: copy run after run.
    * ``tiled``: axis ``a`` (the last of ``dims``) is contiguous in the destination and axis
      ``b`` in the source (stride ``run``): walked in square tiles so that both the reads and
      the writes of a tile stay within a few cache lines (a plain loop strides one side by a
      whole row per element)."""
    kind: str
    dims: tuple
    src: tuple
    dst: tuple
    run: int
    a: int = -1
    b: int = -1

    @property
    def outer(self) -> list[int]:
        """Indices of the axes that are neither tiled axis (all of them for ``rows``)."""
        return [d for d in range(len(self.dims)) if d not in (self.a, self.b)]


def transpose_plan(in_shape: tuple, perm: tuple, itemsize: int) -> TransposePlan:
    """The ``TransposePlan`` of ``transpose(x, perm)`` for a contiguous x of ``in_shape``."""
    out_shape = tuple(in_shape[p] for p in perm)
    if 0 in out_shape:
        return TransposePlan("copy", (), (), (), 0)
    in_st = strides_for(in_shape, in_shape)
    keep = [d for d, n in enumerate(out_shape) if n != 1]  # size-1 axes never move data
    out_st = strides_for(out_shape, out_shape)
    dims, (src, dst) = collapse(tuple(out_shape[d] for d in keep),
                                [[in_st[perm[d]] for d in keep], [out_st[d] for d in keep]])
    if len(dims) <= 1:  # identity after merging: src and dst walk the same order
        return TransposePlan("copy", (), (), (), int(dims[0]) if dims else 1)
    run = 1
    if src[-1] == 1:  # the last axis stays: both sides have runs of dims[-1]
        run = dims.pop()
        src.pop()
        dst.pop()
        if len(dims) == 1 or run * itemsize >= ROW_BYTES:
            return TransposePlan("rows", tuple(dims), tuple(src), tuple(dst), run)
    # the source is dense, so the smallest stride left is one run; merging made it not the
    # destination's contiguous (last) axis
    b = src.index(run)
    assert b != len(dims) - 1 and dst[-1] == run, (in_shape, perm, dims, src, dst)
    return TransposePlan("tiled", tuple(dims), tuple(src), tuple(dst), run, len(dims) - 1, b)


def fused_plan(k: "Kernel") -> FusedPlan:
    """The per-element plan of an ``ew``, ``dense`` or ``reduce`` kernel including its
    members."""
    node = k.node
    operands: list = []
    index: dict = {}

    def operand(t: Tensor, st: Storage) -> tuple[str, int]:
        key = (st.where, st.index, tuple(t.shape), t.dtype)
        if key not in index:
            index[key] = len(operands)
            operands.append((t, st))
        return ("in", index[key])

    outputs, exprs = [(node, k.dst)], []
    if node.op == "dense":
        refs = [("acc", 0)] + [operand(t, st) for t, st in zip(node.inputs[2:], k.srcs[2:])]
        exprs.append((node.attrs["expr"], refs))
    elif k.kind == "reduce":  # the reduced value ("acc") is the host's output
        from .symbolic import A
        exprs.append((A[0], [("acc", 0)]))
    else:
        expr, inputs = ew_parts(node)
        exprs.append((expr, [operand(t, k.srcs[node.inputs.index(t)]) for t in inputs]))
    value_of = {node.id: 0}
    for m in k.members:
        expr, inputs = ew_parts(m.node)
        refs = [("val", value_of[t.id]) if t.id in value_of
                else operand(t, m.srcs[m.node.inputs.index(t)]) for t in inputs]
        value_of[m.node.id] = len(outputs)
        outputs.append((m.node, m.dst))
        exprs.append((expr, refs))
    return FusedPlan(operands, outputs, exprs)


def linear_update(k: "Kernel", plan: FusedPlan):
    """A GEMM kernel whose epilogue is ``C_old + alpha * acc``, with C_old the kernel's own
    output read in place at (i, j) and alpha free of per-element values (plain SGD,
    ``p - lr * (h^T g)``), can add ``alpha * (A @ B)`` to C straight from the registers instead
    of passing every tile through the epilogue.  Returns (alpha as a SymPy expression of the
    arguments A[j], the refs of ``plan.exprs[0]``) or None."""
    import sympy as sp

    from .symbolic import A
    if k.node.op != "dense" or len(plan.outputs) != 1:
        return None
    expr, refs = plan.exprs[0]
    shape = tuple(k.node.shape)
    scalars = {A[j] for j, (kind, q) in enumerate(refs)
               if kind == "in" and len(plan.operands[q][0].shape) == 0}
    for j, (kind, q) in enumerate(refs):
        t, st = plan.operands[q] if kind == "in" else (None, None)
        if kind != "in" or st != k.dst or tuple(t.shape) != shape:
            continue
        rest = sp.expand(expr - A[j])
        if not rest.is_polynomial(A[0]) or sp.degree(rest, A[0]) != 1:
            return None
        alpha = rest.coeff(A[0], 1)
        if sp.simplify(rest - alpha * A[0]) != 0 or not alpha.free_symbols <= scalars:
            return None
        return alpha, refs
    return None


def plan_loop(plan: FusedPlan):
    """Collapsed loop dims, per-operand and per-output element strides of an elementwise
    kernel's plan (the outputs all have the host's shape)."""
    out_shape = tuple(plan.outputs[0][0].shape)
    strides = [strides_for(t.shape, out_shape) for t, _ in plan.operands]
    strides += [strides_for(out_shape, out_shape)] * len(plan.outputs)
    dims, col = collapse(out_shape, strides)
    n = len(plan.operands)
    return dims, col[:n], col[n:]


MAX_FOLDED_ARGS = 24  # operands + outputs of a kernel with members (GPU argument lists)
# Fold updates into a GEMM's epilogue too?  Measured on the 784-256-256-10 Adam step (batch 128,
# one thread, best of 30 x 30 steps, alternating runs): one elementwise loop for a weight's m, v
# and p: 1.74-1.84 ms per step; the same in the gradient GEMM's epilogue: 2.22-2.61 ms (three
# loops, no folding: 1.99-2.16 ms).  The epilogue runs tile by tile over a dozen streams while
# the GEMM wants the cores for FMAs; a streaming loop right after it is cheaper.  The renderers
# support it (tests keep both paths right); ``lower(..., fold_into_gemm=True)`` enables it.
FOLD_INTO_GEMM = False
# Fold updates into the reduction computing their gradient (a bias's column sum): its final
# loop over the outputs then also updates the bias (and its optimizer state), one kernel less
# per bias.  Both renderers support it (GPU: the thread holding an output's final value).
FOLD_INTO_REDUCE = True


def _fold_updates(order: list[Tensor], in_place: dict, extra: dict, base,
                  host_kinds=("ew",)) -> dict[int, Tensor]:
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
                    or _kernel_kind(h) not in host_kinds:
                continue
            if _kernel_kind(h) == "reduce" and any(
                    i.shape != v.shape and _numel(i.shape) != 1 for i in v.inputs):
                continue
            w, r = group_state(h)
            group = {h.id} | {m for m, hh in host_of.items() if hh is h}
            if any(base(i).id in group and i.id not in group for i in v.inputs):
                continue  # a view of a group value: read it from memory, not the loop
            if (w | {mine_w}) & (r | mine_r) or count[h.id] + len(v.inputs) + 1 > MAX_FOLDED_ARGS:
                continue
            trial = dict(host_of)
            trial[v.id] = h
            if _schedule(order, extra, {m: hh.id for m, hh in trial.items()}) is None:
                continue
            host_of[v.id] = h
            w.add(mine_w)
            r |= mine_r
            count[h.id] += len(v.inputs) + 1
            break
    return host_of


FOLD_ACTIVATIONS = True


def _fold_activations(order: list[Tensor], in_place: dict, host_of: dict, extra: dict
                      ) -> dict[int, Tensor]:
    """Activation id -> GEMM host: an elementwise node reading a ``dense`` node's output at the
    same index, which the fusion passes left apart because the backward pass reads that output
    too (the pre-activation z of gelu, silu, prelu, ...: activations without an output-form
    derivative), is computed in the GEMM's epilogue and written to its own buffer, next to z:
    one pass over z less.  One per GEMM, whose kernel hosts nothing else."""
    found: dict[int, Tensor] = {}
    taken = {h.id for h in host_of.values()}
    for v in order:
        if v.op != "ew" or v.id in in_place or v.id in host_of:
            continue
        hosts = [t for t in v.inputs if t.op == "dense" and t.shape == v.shape
                 and t.id not in in_place and t.id not in host_of]
        if len(hosts) != 1 or hosts[0].id in taken:
            continue
        h = hosts[0]
        if len(h.inputs) + len(v.inputs) + 2 > MAX_FOLDED_ARGS:
            continue
        merged = {m: hh.id for m, hh in {**host_of, **found, v.id: h}.items()}
        if _schedule(order, extra, merged) is None:
            continue  # an operand of the activation is computed after the GEMM's readers
        found[v.id] = h
        taken.add(h.id)
    return found


FUSE_XENT_GRAD = True
XENT_OPS = ("softmax_cross_entropy", "softmax_cross_entropy_grad")  # label-checking row kernels


def _fold_xent_grads(order: list[Tensor], extra: dict, host_of: dict, base
                     ) -> dict[int, Tensor]:
    """Cross-entropy gradient id -> the kernel of its loss: softmax_cross_entropy and
    softmax_cross_entropy_grad of the same logits and labels run as one kernel, one pass over
    the logits (max, exponentials and their sum once) writing both the losses and the gradient.
    Only when the gradient's row weights g are computed before the loss is needed: they do not
    depend on the loss values (the mean's seed 1/N reads only the losses' shape)."""
    if not FUSE_XENT_GRAD:
        return {}
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
            merged = {m: hh.id for m, hh in {**host_of, **found, d.id: x}.items()}
            if _schedule(order, extra, merged) is not None:
                found[d.id] = x
                taken.add(x.id)
                break
    return found


@dataclass
class XentParts:
    """What a cross-entropy row kernel computes (both renderers): the losses (``loss``, into the
    kernel's dst), the gradient (``grad`` from row weights at ``g_src`` into ``grad_dst``), or
    both when the gradient is the loss kernel's member."""
    loss: Optional[Tensor]
    grad: Optional[Tensor]
    g_src: Optional[Storage]
    grad_dst: Optional[Storage]


def xent_parts(k: Kernel) -> XentParts:
    if k.node.op == "softmax_cross_entropy_grad":
        return XentParts(None, k.node, k.srcs[2], k.dst)
    m = k.members[0] if k.members else None
    return XentParts(k.node, m and m.node, m and m.srcs[2], m and m.dst)


# Compute a maxout of a GEMM's output in the GEMM's kernel (C only: ``lower(...,
# fold_group_max=False)`` for the GPU renderers).  The C GEMM calls a row hook on the rows of C
# it has just stored (kernels/gc_gemm.h, "Row hook"): the group maxima are taken while the tile
# is in L1 instead of in a separate reduction reading z back from memory.
FOLD_GROUP_MAX = True


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
    if shape[0] != rows or _numel(shape[1:]) != cols or shape[-1] < 1 or node.dtype != host.dtype:
        return None
    return int(shape[-1])


def _fold_group_max(order: list[Tensor], in_place: dict, host_of: dict, extra: dict, base
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
        merged = {m: hh.id for m, hh in {**host_of, **found, **views, **chain, v.id: h}.items()}
        if _schedule(order, extra, merged) is None:
            continue
        found[v.id] = h
        views.update(chain)
        taken.add(h.id)
    return found, views


# Compute an elementwise node read only by a reduction inside the reduction, at each element
# it loads (a ``Prologue``): mse's squared differences, a cross-entropy's or a layer norm
# backward's per-element terms were written to a buffer by one kernel and read back by the
# next.  Both renderers support it; ``lower(..., fold_ew_into_reduce=False)`` keeps them apart.
# Measured (benchmarks/sweep_ops.py, 1 thread, min-max of 3 alternating runs): mse (4096, 1024)
# forward 2.36-2.61 -> 1.18-1.30 ms; layer norm (32, 128, 512) forward + backward 9.1-13.9 ->
# 7.9-10.1 ms (backward: 19 -> 15 kernels).  A logsumexp computes the expression in both of
# its passes, so it folds plain arithmetic only (``_arithmetic``).
FOLD_EW_INTO_REDUCE = True
EW_PRODUCERS = ("ew", "broadcast_like")  # ops whose kernel is an elementwise expression


def _arithmetic(expr) -> bool:
    """Whether ``expr`` is plain arithmetic (sums, products, integer powers, |x|, max, min,
    comparisons, selections): no libm call, cheap to compute twice."""
    import sympy as sp

    from .symbolic import Max2, Min2
    plain = (sp.Symbol, sp.Number, sp.Add, sp.Mul, sp.Abs, sp.sign, sp.Piecewise, Max2, Min2,
             sp.functions.elementary.piecewise.ExprCondPair, sp.core.relational.Relational,
             sp.logic.boolalg.BooleanFunction, sp.logic.boolalg.BooleanAtom)
    return all(isinstance(e, plain) or (isinstance(e, sp.Pow) and e.exp.is_Integer)
               for e in sp.preorder_traversal(sp.sympify(expr)))


def _fold_ew_into_reduce(order: list[Tensor], in_place: dict, host_of: dict, extra: dict,
                         readers: dict, pinned: set, base) -> dict[int, list[Tensor]]:
    """Reduction id -> [the elementwise node it computes as its prologue, then the views
    between that node and the reduction, which run with it]: the node is one of
    ``EW_PRODUCERS`` whose only reader is the reduction (directly or through views), that
    is no program output or update value (``pinned``: bases of those), no in-place update,
    no host or member of a fold.  Through a view, its operands must be full-shape or one
    element (the view keeps row-major order, not the operands' broadcast strides).  The
    reduction's members (a bias's updates) must not write what the prologue reads: a task
    stores its outputs' updates while others still load.  Operands and members together stay
    within MAX_FOLDED_ARGS.  A logsumexp folds plain arithmetic only (``_arithmetic``)."""
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
        if r.op == "logsumexp" and not _arithmetic(ew_parts(e)[0]):
            # it reads each element twice (the max, then the exponentials): libm calls made
            # twice cost more than the buffer (logsumexp(tanh(x) * y, axis=0) on (4096, 1024),
            # 1 thread: 6.6-7.6 ms apart, 11.4-12.8 ms folded)
            continue
        if tuple(e.shape) != tuple(r.inputs[0].shape) and any(
                tuple(t.shape) != tuple(e.shape) and _numel(t.shape) != 1 for t in e.inputs):
            continue
        written = {in_place[m].id for m in members.get(r.id, []) if m in in_place}
        if any(base(t).id in written for t in e.inputs):
            continue
        args = len(e.inputs) + 1 + sum(len(by_id[m].inputs) + 1 for m in members.get(r.id, [])
                                        if m in by_id)
        if args > MAX_FOLDED_ARGS:
            continue
        chain, t = [], r.inputs[0]
        while t is not e:
            chain.append(t)
            t = t.inputs[0]
        trial = {**merged, **{v.id: r.id for v in chain}, e.id: r.id}
        if _schedule(order, extra, trial) is None:
            continue
        merged = trial
        found[r.id] = [e] + chain[::-1]
    return found


def _kernel_kind(node: Tensor) -> str:
    if node.op in ("ew", "broadcast_like", "fill_like"):
        return "ew"
    if node.op == "dense":
        return "dense"
    return {"matmul": "matmul", "reduce": "reduce", "rowwise": "rowwise", "layout": "transpose",
            "random": "random"}[lookup(node.op).kind]


def _schedule(order: list[Tensor], extra: dict[int, set[int]],
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


def lower(program: Program, shapes: Sequence[tuple], pipeline=None,
          fold_into_gemm: Optional[bool] = None,
          fold_into_reduce: Optional[bool] = None,
          fold_group_max: Optional[bool] = None,
          fold_ew_into_reduce: Optional[bool] = None) -> Lowered:
    """Lower ``program`` for inputs of concrete ``shapes``.  ``fold_into_gemm`` /
    ``fold_into_reduce``: whether in-place updates may also fold into a GEMM's epilogue /
    a reduction's final loop (defaults ``FOLD_INTO_GEMM`` / ``FOLD_INTO_REDUCE``);
    ``fold_group_max``: whether a maxout of a GEMM's output is computed by the GEMM's kernel
    (default ``FOLD_GROUP_MAX``); ``fold_ew_into_reduce``: whether an elementwise node read
    only by a reduction is computed by it (default ``FOLD_EW_INTO_REDUCE``)."""
    n_out = len(program.outputs)
    track = {n.id: n for n in toposort(program.roots)}  # program node id -> current node
    trace: dict = {}
    roots, inputs = concretize(program.roots, program.inputs, shapes, trace=trace)
    for _, fn in (BACKEND_PIPELINE if pipeline is None else pipeline):
        track = {pid: trace.get(n.id, n) for pid, n in track.items()}
        trace = {}
        roots = fn(roots, trace=trace)
    track = {pid: trace.get(n.id, n) for pid, n in track.items()}
    outs, values = roots[:n_out], roots[n_out:]

    def base(t: Tensor) -> Tensor:
        while t.op in VIEW_OPS:
            t = t.inputs[0]
        return t

    outs, values = _snapshot_updated_params(program, outs, values, base)
    updates = [(p, v) for (p, _), v in zip(program.updates, values)]
    roots = outs + values
    order = toposort(roots)

    # readers of each base node (through views)
    readers: dict[int, set[int]] = {}
    for n in order:
        if n.op in VIEW_OPS or n.is_leaf:
            continue
        for i in n.inputs:
            readers.setdefault(base(i).id, set()).add(n.id)

    out_ids = {o.id for o in outs}
    value_count: dict[int, int] = {}
    for _, v in updates:
        value_count[v.id] = value_count.get(v.id, 0) + 1

    # in-place parameter updates: the kernel computing the new value writes the parameter
    in_place: dict[int, Tensor] = {}   # value node id -> parameter
    label_checkers = {n.id for n in order if n.op in XENT_OPS}
    extra: dict[int, set[int]] = {}
    for p, v in updates:
        if (v.is_leaf or v.op in VIEW_OPS or v.id in out_ids or value_count[v.id] > 1
                or v.shape != p.shape or v.dtype != p.dtype or v.op not in ("ew", "dense")):
            continue
        if v.op == "dense" and any(base(t) is p for t in v.inputs[:2]):
            continue  # the GEMM reads its operands throughout: no overwrite while reading
        if any(base(t) is p and t.shape != v.shape for t in v.inputs):
            continue  # a broadcast read of p would see already-updated elements
        # after every label check too: a step stopped by invalid labels has updated nothing
        others = (readers.get(p.id, set()) | label_checkers) - {v.id}
        trial = dict(extra)
        trial[v.id] = set(extra.get(v.id, set())) | others
        if _schedule(order, trial) is None:
            continue  # a reader of the old value depends on the new one
        extra = trial
        in_place[v.id] = p

    gemm = FOLD_INTO_GEMM if fold_into_gemm is None else fold_into_gemm
    into_reduce = FOLD_INTO_REDUCE if fold_into_reduce is None else fold_into_reduce
    host_kinds = ("ew",) + (("dense",) if gemm else ()) + (("reduce",) if into_reduce else ())
    updates_of = _fold_updates(order, in_place, extra, base, host_kinds)
    own_out_of = _fold_activations(order, in_place, updates_of, extra) if FOLD_ACTIVATIONS else {}
    own_out_of.update(_fold_xent_grads(order, extra, {**updates_of, **own_out_of}, base))
    host_of = {**updates_of, **own_out_of}
    fold_max = FOLD_GROUP_MAX if fold_group_max is None else fold_group_max
    max_of, max_views = (_fold_group_max(order, in_place, host_of, extra, base) if fold_max
                         else ({}, {}))
    host_of.update(max_of)
    into_red = FOLD_EW_INTO_REDUCE if fold_ew_into_reduce is None else fold_ew_into_reduce
    pinned = {base(t).id for t in outs + values}
    value_readers: dict[int, set[int]] = {}  # readers of values (broadcast_like's shape: no)
    for n in order:
        if not (n.op in VIEW_OPS or n.is_leaf):
            for i in data_inputs(n):
                value_readers.setdefault(base(i).id, set()).add(n.id)
    # reduction id -> [elementwise node it computes, views between them]
    prologue_group = (_fold_ew_into_reduce(order, in_place, {**host_of, **max_views}, extra,
                                           value_readers, pinned, base) if into_red else {})
    prologue_of = {rid: group[0] for rid, group in prologue_group.items()}
    folded_ew = {e.id for e in prologue_of.values()}
    members_of: dict[int, list[Tensor]] = {}
    views_of: dict[int, list[Tensor]] = {}  # host id -> views of its output a folded max reads
    for n in order:  # members in topological order (a member may read an earlier one)
        if n.id in host_of:
            members_of.setdefault(host_of[n.id].id, []).append(n)
        elif n.id in max_views:
            views_of.setdefault(max_views[n.id].id, []).append(n)
    contracted = {m: h.id for m, h in {**host_of, **max_views}.items()}
    contracted.update({t.id: rid for rid, ts in prologue_group.items() for t in ts})
    order = _schedule(order, extra, contracted)
    assert order is not None
    # the folded node and its views follow their reduction (display names; never computed)
    order = [x for n in order for x in [n] + views_of.get(n.id, []) + members_of.get(n.id, [])
             + prologue_group.get(n.id, [])]
    # display names independent of global node ids, so identical graphs render identically
    names = {n.id: n._name if n._name is not None else f"{n.attrs.get('label', n.op)}_{i}"
             for i, n in enumerate(order)}

    # -- slots ------------------------------------------------------------------------------
    slots: list[Slot] = []
    storage: dict[int, Storage] = {}

    def add_slot(kind: str, node: Tensor) -> int:
        slots.append(Slot(kind, node))
        return len(slots) - 1

    for p in inputs:
        storage[p.id] = Storage("slot", add_slot("input", p), nbytes(p))
    for n in order:
        if n.op == "parameter" and n.id not in storage:
            storage[n.id] = Storage("slot", add_slot("param", n), nbytes(n))
        elif n.op == "constant" and n.id not in storage:
            storage[n.id] = Storage("slot", add_slot("const", n), nbytes(n))
    for p, _ in updates:
        if p.id not in storage:
            storage[p.id] = Storage("slot", add_slot("param", p), nbytes(p))

    computed = [n for n in order if not n.is_leaf and n.op not in VIEW_OPS
                and n.id not in host_of and n.id not in folded_ew]
    for n in updates_of:
        storage[n] = storage[in_place[n].id]
    output_slots: list[tuple[int, Tensor]] = []
    direct_out: dict[int, int] = {}  # node id -> output slot it is computed into
    for o in outs:
        k = add_slot("output", o)
        output_slots.append((k, o))
        if not o.is_leaf and o.op not in VIEW_OPS and o.id not in direct_out \
                and o.id not in in_place:
            direct_out[o.id] = k
    for k, o in output_slots:
        # an output that is a view (reshape & co.) of a computed node: compute that node into
        # the output slot (views keep the bytes), not into the arena and then copy it out
        b = base(o)
        if o.op in VIEW_OPS and not b.is_leaf and b.id not in direct_out and b.id not in in_place and b.id not in updates_of \
                and b.dtype == o.dtype:
            direct_out[b.id] = k

    # -- arena plan (liveness) --------------------------------------------------------------
    end = len(computed)
    last_use: dict[int, int] = {}
    for s, n in enumerate(computed):
        for i in [i for x in [n] + members_of.get(n.id, []) + prologue_group.get(n.id, [])[:1]
                  for i in x.inputs]:
            last_use[base(i).id] = max(last_use.get(base(i).id, -1), s)
    for o in outs:
        last_use[base(o).id] = end          # copied into its output slot at the end
    for p, v in updates:
        last_use[base(v).id] = end          # copied into the parameter at the end
    free: list[tuple[int, int]] = []        # (offset, size) blocks available
    live: list[tuple[int, int, int]] = []   # (last step, offset, size)
    arena = 0
    buffers: dict[str, int] = {}
    def place(n: Tensor, s: int) -> None:
        if n.id in direct_out:
            storage[n.id] = Storage("slot", direct_out[n.id], nbytes(n))
            return
        if n.id in in_place:
            storage[n.id] = storage[in_place[n.id].id]
            return
        nonlocal arena
        size = -(-max(nbytes(n), 1) // ALIGN) * ALIGN
        fit = min((b for b in free if b[1] >= size), key=lambda b: b[1], default=None)
        if fit is not None:
            free.remove(fit)
            offset = fit[0]
            if fit[1] > size:
                free.append((fit[0] + size, fit[1] - size))
        else:
            offset, arena = arena, arena + size
        storage[n.id] = Storage("arena", offset, nbytes(n))
        buffers[names[n.id]] = nbytes(n)
        live.append((last_use.get(n.id, s), offset, size))

    for s, n in enumerate(computed):
        for item in [x for x in live if x[0] < s]:
            live.remove(item)
            free.append((item[1], item[2]))
        place(n, s)
        for m in members_of.get(n.id, []):
            if m.id in own_out_of or m.id in max_of:  # written by n's kernel at step s, read later
                place(m, s)

    def where(t: Tensor) -> Storage:
        return storage[base(t).id]

    def where_read(t: Tensor) -> Optional[Storage]:
        # None: a folded node read for its shape only (broadcast_like's reference)
        return storage.get(base(t).id)

    # -- kernels ----------------------------------------------------------------------------
    kernels: list[Kernel] = []
    for s, n in enumerate(computed):
        kind = _kernel_kind(n)
        label = n.attrs.get("label", n.op)
        members = [Member(m, storage[m.id], [where(i) for i in m.inputs], m.id not in own_out_of)
                   for m in members_of.get(n.id, []) if m.id not in max_of]
        gmax = next((GroupMax(m, storage[m.id], group_max_pieces(m, base))
                     for m in members_of.get(n.id, []) if m.id in max_of), None)
        suffix = "".join("_grad" if m.node.op == "softmax_cross_entropy_grad" else
                         "_" + sanitize(m.node.attrs.get("label", m.node.op), 16)
                         for m in members if not m.in_place)
        suffix += "_maxout" if gmax is not None else ""
        suffix += "_updates" if any(m.in_place for m in members) else ""
        prologue = None
        if n.id in prologue_of:  # the reduction computes its input: no buffer to read
            e = prologue_of[n.id]
            reads = {i.id for i in ew_parts(e)[1]}  # not broadcast_like's shape reference
            prologue = Prologue(e, [where(i) if i.id in reads else None for i in e.inputs])
            suffix = "_" + sanitize(e.attrs.get("label", e.op), 16) + suffix
        srcs = [None] if prologue is not None else [where_read(i) for i in n.inputs]
        kernels.append(Kernel(f"k{s}_{sanitize(label, 24)}{suffix}", kind, n, where(n),
                              srcs, members=members, group_max=gmax, prologue=prologue))
    for k, o in output_slots:
        if where(o) != Storage("slot", k, nbytes(base(o))):
            kernels.append(Kernel(f"k{len(kernels)}_copy_out", "copy", o,
                                  Storage("slot", k, nbytes(o)), [where(o)]))
    for p, v in updates:
        if v.id in in_place or base(v) is p:
            continue
        kernels.append(Kernel(f"k{len(kernels)}_update_{sanitize(names.get(p.id, p.name), 24)}",
                              "copy", v,
                              storage[p.id], [where(v)]))

    kernel_of = _provenance(program, track, kernels)
    checks = []
    for n in computed:
        if n.op in XENT_OPS:
            lab = base(n.inputs[1])
            if lab.op == "placeholder":
                checks.append((storage[lab.id].index, n.inputs[0].shape[1]))
    def fed_slot(labels: Tensor):
        return storage[base(labels).id].index if base(labels).op == "placeholder" else None
    kernel_checks = [(k.name, k.node.inputs[0].shape[1], fed_slot(k.node.inputs[1]))
                     for k in kernels if k.kind != "copy" and k.node.op in XENT_OPS]
    return Lowered(inputs, slots, kernels, arena, output_slots, buffers,
                   [p.name for p in in_place.values()], checks, kernel_checks, names, kernel_of)


def _snapshot_updated_params(program: Program, outs: list, values: list, base):
    """Outputs and update values that are (views of) an updated parameter, read through an
    elementwise copy kernel.  Copies into output slots and parameters run after every kernel,
    and a parameter may be written in place before that (or by an earlier update copy), so
    reading the parameter there would see its new value: ``outputs=[p]`` with
    ``updates=[(p, p + 1)]`` returned p + 1, and ``updates=[(a, b), (b, a)]`` gave both b.  As
    kernels, the copies are readers like any other: in-place writes wait for them, and every
    update reads the old values."""
    from .ops.registry import make
    from .symbolic import A
    updated = {p.id for p, _ in program.updates}
    made: dict[int, Tensor] = {}

    def snapshot(t: Tensor) -> Tensor:
        if t.id not in made:
            made[t.id] = make("ew", [t], expr=A[0], label="copy", dtype=t.dtype)
        return made[t.id]

    def reads_updated(t: Tensor) -> bool:
        b = base(t)
        return b.op == "parameter" and b.id in updated

    outs = [snapshot(o) if reads_updated(o) else o for o in outs]
    values = [snapshot(v) if reads_updated(v) and base(v) is not p else v
              for (p, _), v in zip(program.updates, values)]
    return outs, values


def label_status(low: Lowered, k: Kernel) -> int:
    """The step's return status when kernel ``k`` finds invalid labels (0: it checks none)."""
    names = [check[0] for check in low.kernel_label_checks]
    return names.index(k.name) + 1 if k.name in names else 0


def label_error(low: Lowered, status: int, feeds: list) -> ValueError:
    """The error for a step that a cross-entropy kernel stopped with ``status`` (see
    ``label_status``): it names the fed input and the range of its labels when they were fed."""
    name, classes, slot = low.kernel_label_checks[status - 1]
    if slot is not None:
        labels = feeds[slot]
        return ValueError(f"cross_entropy: labels must be in [0, {classes}), got range "
                          f"[{labels.min()}, {labels.max()}] in input "
                          f"{low.slots[slot].node.name!r}; nothing was updated")
    return ValueError(f"cross_entropy: labels must be in [0, {classes}); labels computed in the "
                      f"graph are out of range ({name}); nothing was updated")


def _provenance(program: Program, track: dict, kernels: list[Kernel]) -> dict[int, str]:
    """Program node id -> name of the kernel computing it.  A node fused away (an inlined
    producer, a folded transpose, a view) belongs to the kernel of a consumer."""
    by_node = {n.id: k.name for k in kernels if k.kind != "copy"
               for n in [k.node] + [m.node for m in k.members]
               + ([k.group_max.node] if k.group_max is not None else [])
               + ([k.prologue.node] if k.prologue is not None else [])}
    order = toposort(program.roots)
    users = consumers(order)
    out: dict[int, str] = {}
    for n in reversed(order):
        if n.is_leaf:
            continue
        name = by_node.get(track[n.id].id)
        if name is None:
            name = next((out[u.id] for u in users.get(n.id, []) if u.id in out), None)
        if name is not None:
            out[n.id] = name
    return out
