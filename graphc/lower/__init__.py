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

Modules: ``model`` (the records), ``layout`` (index arithmetic), ``plans`` (per-kernel plans
the renderers share), ``folds`` (the fold passes), ``arena`` (the liveness-based buffer plan);
this one drives them (``lower``) and holds the switches of the folds.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence

from ..fusion import BACKEND_PIPELINE, concretize
from ..ir import Tensor, consumers, toposort
from ..ops.registry import data_inputs
from ..program import Program
from .arena import plan_arena
from .folds import (EW_PRODUCERS, arithmetic, fold_activations, fold_ew_into_reduce,
                    fold_group_max, fold_scalars, fold_updates, fold_xent_grads,
                    group_max_pieces, kernel_kind, schedule)
from .layout import (BLOCK_BYTES, ROW_BYTES, TILE_BYTES, TransposePlan,
                     collapse, merge_groups, strides_for, transpose_plan)
from .model import (ALIGN, VIEW_OPS, view_base, XENT_OPS, FusedPlan, GroupMax, Kernel,
                    Lowered, Member, Prologue, ReduceRead, Slot, Storage, XentParts,
                    comment, label_error, label_status, nbytes, numel, sanitize)
from .plans import (ew_parts, fused_plan, linear_update, plan_loop, reduce_read,
                    xent_parts)

# the package's interface (renderers and runtimes import these from ``graphc.lower``)
__all__ = ["ALIGN", "BLOCK_BYTES", "EW_PRODUCERS", "ROW_BYTES", "TILE_BYTES", "VIEW_OPS",
           "XENT_OPS", "Folds", "FusedPlan", "GroupMax", "Kernel", "Lowered", "Member",
           "Prologue", "ReduceRead", "Slot", "Storage", "TransposePlan", "XentParts",
           "arithmetic", "collapse", "comment", "ew_parts", "fused_plan", "label_error",
           "label_status", "linear_update", "lower", "merge_groups", "nbytes", "numel",
           "plan_loop", "reduce_read", "sanitize", "strides_for", "transpose_plan",
           "view_base", "xent_parts"]

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
FOLD_ACTIVATIONS = True
FUSE_XENT_GRAD = True
# Compute a maxout of a GEMM's output in the GEMM's kernel (C only: ``lower(...,
# fold_group_max=False)`` for the GPU renderers).  The C GEMM calls a row hook on the rows of C
# it has just stored (kernels/gc_gemm.h, "Row hook"): the group maxima are taken while the tile
# is in L1 instead of in a separate reduction reading z back from memory.
FOLD_GROUP_MAX = True
# Compute an elementwise node read only by a reduction inside the reduction, at each element
# it loads (a ``Prologue``): mse's squared differences, a cross-entropy's or a layer norm
# backward's per-element terms were written to a buffer by one kernel and read back by the
# next.  Both renderers support it; ``lower(..., fold_ew_into_reduce=False)`` keeps them apart.
# Measured (benchmarks/sweep_ops.py, 1 thread, min-max of 3 alternating runs): mse (4096, 1024)
# forward 2.36-2.61 -> 1.18-1.30 ms; layer norm (32, 128, 512) forward + backward 9.1-13.9 ->
# 7.9-10.1 ms (backward: 19 -> 15 kernels).  A logsumexp computes the expression in both of
# its passes, so it folds plain arithmetic only (``arithmetic``).
FOLD_EW_INTO_REDUCE = True
# Compute the scalar elementwise nodes of a step (an optimizer's per-parameter step counters and
# bias corrections: three per parameter for Adam) as members of one kernel per dtype: the
# 784-256-256-10 Adam step had 26 kernels, 18 of them one-element ones (a launch each on a GPU).
FOLD_SCALARS = True


@dataclass
class Folds:
    """Which nodes run inside another node's kernel (the fold passes' results)."""
    host_of: dict          # member id -> host: updates, activations, xent gradients, group max
    own_out_of: dict       # members written to a buffer of their own (activations, gradients)
    max_of: dict           # folded maxout id -> its GEMM
    max_views: dict        # id of a view between a GEMM and its folded maxout -> the GEMM
    prologue_group: dict   # reduction id -> [elementwise node it computes, views between them]
    members_of: dict       # host id -> members, in topological order
    views_of: dict         # host id -> views of its output its folded maxout reads

    @cached_property
    def prologue_of(self) -> dict:
        return {rid: group[0] for rid, group in self.prologue_group.items()}

    def runs_inside(self, n: Tensor) -> bool:
        """Whether ``n`` has no kernel of its own."""
        return n.id in self.host_of or n.id in self.folded_ew

    @cached_property  # (asked once per computed node)
    def folded_ew(self) -> set:
        return {group[0].id for group in self.prologue_group.values()}


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
    pick = lambda given, default: default if given is None else given  # noqa: E731
    outs, values, inputs, track, one_sample = _backend_graph(program, shapes, pipeline)
    updates = [(p, v) for (p, _), v in zip(program.updates, values)]
    order = toposort(outs + values)
    in_place, extra = _plan_in_place(order, outs, updates)
    folds = _fold(order, in_place, extra, pinned={view_base(t).id for t in outs + values},
                  gemm=pick(fold_into_gemm, FOLD_INTO_GEMM),
                  into_reduce=pick(fold_into_reduce, FOLD_INTO_REDUCE),
                  group_max=pick(fold_group_max, FOLD_GROUP_MAX),
                  ew_into_reduce=pick(fold_ew_into_reduce, FOLD_EW_INTO_REDUCE))
    order = _kernel_order(order, extra, folds)
    # display names independent of global node ids, so identical graphs render identically
    names = {n.id: n._name if n._name is not None else f"{n.attrs.get('label', n.op)}_{i}"
             for i, n in enumerate(order)}
    slots, storage, output_slots, direct_out = _assign_slots(inputs, order, outs, updates,
                                                             in_place, folds)
    computed = [n for n in order if not n.is_leaf and n.op not in VIEW_OPS
                and not folds.runs_inside(n)]
    arena, buffers = plan_arena(computed, storage, outs, updates, folds, direct_out, in_place,
                                names)
    kernels = _make_kernels(computed, storage, folds)
    _add_copy_kernels(kernels, output_slots, updates, in_place, storage, names)
    checks = [(storage[view_base(n.inputs[1]).id].index, n.inputs[0].shape[1])
              for n in computed
              if n.op in XENT_OPS and view_base(n.inputs[1]).op == "placeholder"]

    def fed_slot(labels: Tensor):
        b = view_base(labels)
        return storage[b.id].index if b.op == "placeholder" else None
    kernel_checks = [(k.name, k.node.inputs[0].shape[1], fed_slot(k.node.inputs[1]))
                     for k in kernels if k.kind != "copy" and k.node.op in XENT_OPS]
    return Lowered(inputs, slots, kernels, arena, output_slots, buffers,
                   [p.name for p in in_place.values()], checks, kernel_checks, names,
                   _provenance(program, track, kernels), one_sample)


def _backend_graph(program: Program, shapes: Sequence[tuple], pipeline):
    """The program's outputs and update values for these shapes after the backend passes
    (fusion & co.), updated parameters read through copies (``_snapshot_updated_params``),
    the concrete placeholders, program node id -> the node now computing it, and the
    ``one_sample_checks`` of these shapes."""
    n_out = len(program.outputs)
    track = {n.id: n for n in toposort(program.roots)}  # program node id -> current node
    trace: dict = {}
    roots, inputs = concretize(program.roots, program.inputs, shapes, trace=trace)
    one_sample = _one_sample_checks(track.values(), trace)
    for _, fn in (BACKEND_PIPELINE if pipeline is None else pipeline):
        track = {pid: trace.get(n.id, n) for pid, n in track.items()}
        trace = {}
        roots = fn(roots, trace=trace)
    track = {pid: trace.get(n.id, n) for pid, n in track.items()}
    outs, values = _snapshot_updated_params(program, roots[:n_out], roots[n_out:])
    return outs, values, inputs, track, one_sample


def _one_sample_checks(nodes, trace: dict) -> list:
    """``(size_of node, concrete input shape)`` of the training batch norms whose flag is fed
    (``size_of`` with the flag as second input, ``ops.core._check_batch_stats``) that count one
    sample at these shapes: the count is now a constant, the flag is only known per call."""
    checks = []
    for n in nodes:
        if n.op == "size_of" and len(n.inputs) == 2 and n.attrs.get("batch_stats"):
            count = trace.get(n.id)
            if count is not None and count.op == "constant" and count.attrs["value"] == 1:
                checks.append((n, tuple(trace[n.inputs[0].id].shape)))
    return checks


def _readers(order: list[Tensor], inputs_of=lambda n: n.inputs) -> dict[int, set[int]]:
    """Base node id -> ids of the kernels' nodes reading it (through views)."""
    readers: dict[int, set[int]] = {}
    for n in order:
        if not (n.op in VIEW_OPS or n.is_leaf):
            for i in inputs_of(n):
                readers.setdefault(view_base(i).id, set()).add(n.id)
    return readers


def _plan_in_place(order: list[Tensor], outs: list, updates: list):
    """Parameter updates whose kernel writes the parameter itself: (value node id ->
    parameter, extra ordering edges: every other reader of the old value, and every label
    check, runs before the write)."""
    readers = _readers(order)
    out_ids = {o.id for o in outs}
    value_count: dict[int, int] = {}
    for _, v in updates:
        value_count[v.id] = value_count.get(v.id, 0) + 1
    in_place: dict[int, Tensor] = {}
    label_checkers = {n.id for n in order if n.op in XENT_OPS}
    extra: dict[int, set[int]] = {}
    for p, v in updates:
        if (v.is_leaf or v.op in VIEW_OPS or v.id in out_ids or value_count[v.id] > 1
                or v.shape != p.shape or v.dtype != p.dtype or v.op not in ("ew", "dense")):
            continue
        if v.op == "dense" and any(view_base(t) is p for t in v.inputs[:2]):
            continue  # the GEMM reads its operands throughout: no overwrite while reading
        if any(view_base(t) is p and t.shape != v.shape for t in v.inputs):
            continue  # a broadcast read of p would see already-updated elements
        # after every label check too: a step stopped by invalid labels has updated nothing
        others = (readers.get(p.id, set()) | label_checkers) - {v.id}
        trial = dict(extra)
        trial[v.id] = set(extra.get(v.id, set())) | others
        if schedule(order, trial) is None:
            continue  # a reader of the old value depends on the new one
        extra = trial
        in_place[v.id] = p
    return in_place, extra


def _fold(order: list[Tensor], in_place: dict, extra: dict, pinned: set, gemm: bool,
          into_reduce: bool, group_max: bool, ew_into_reduce: bool) -> Folds:
    """Run the fold passes, each seeing what the earlier ones folded."""
    host_kinds = ("ew",) + (("dense",) if gemm else ()) + (("reduce",) if into_reduce else ())
    updates_of = fold_updates(order, in_place, extra, view_base, host_kinds, MAX_FOLDED_ARGS)
    own_out_of = (fold_activations(order, in_place, updates_of, extra, MAX_FOLDED_ARGS)
                  if FOLD_ACTIVATIONS else {})
    if FUSE_XENT_GRAD:
        own_out_of.update(fold_xent_grads(order, extra, {**updates_of, **own_out_of},
                                          view_base))
    host_of = {**updates_of, **own_out_of}
    max_of, max_views = (fold_group_max(order, in_place, host_of, extra, view_base)
                         if group_max else ({}, {}))
    host_of.update(max_of)
    if FOLD_SCALARS:
        scalars = fold_scalars(order, host_of, extra, MAX_FOLDED_ARGS)
        own_out_of.update({m: h for m, h in scalars.items() if m not in in_place})
        host_of.update(scalars)
    # readers of values (broadcast_like's shape reference is not one)
    value_readers = _readers(order, data_inputs)
    prologue_group = (fold_ew_into_reduce(order, in_place, {**host_of, **max_views}, extra,
                                          value_readers, pinned, view_base, MAX_FOLDED_ARGS)
                      if ew_into_reduce else {})
    members_of: dict[int, list[Tensor]] = {}
    views_of: dict[int, list[Tensor]] = {}
    for n in order:  # members in topological order (a member may read an earlier one)
        if n.id in host_of:
            members_of.setdefault(host_of[n.id].id, []).append(n)
        elif n.id in max_views:
            views_of.setdefault(max_views[n.id].id, []).append(n)
    return Folds(host_of, own_out_of, max_of, max_views, prologue_group, members_of, views_of)


def _kernel_order(order: list[Tensor], extra: dict, folds: Folds) -> list[Tensor]:
    """The schedule with folded nodes contracted into their hosts; each host is followed by
    the views and members it computes, and each reduction by its folded node and views
    (display names; never computed apart)."""
    contracted = {m: h.id for m, h in {**folds.host_of, **folds.max_views}.items()}
    contracted.update({t.id: rid for rid, ts in folds.prologue_group.items() for t in ts})
    order = schedule(order, extra, contracted)
    assert order is not None
    return [x for n in order for x in [n] + folds.views_of.get(n.id, [])
            + folds.members_of.get(n.id, []) + folds.prologue_group.get(n.id, [])]


def _assign_slots(inputs: list, order: list, outs: list, updates: list, in_place: dict,
                  folds: Folds):
    """Slots (pointers passed on every call) for inputs, parameters, constants and outputs.
    Returns (slots, node id -> Storage so far, [(slot, output node)], node id -> the output
    slot it is computed into directly)."""
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
    updates_of = {m for m in folds.host_of if m in in_place}
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
        b = view_base(o)
        if o.op in VIEW_OPS and not b.is_leaf and b.id not in direct_out \
                and b.id not in in_place and b.id not in updates_of and b.dtype == o.dtype:
            direct_out[b.id] = k
    return slots, storage, output_slots, direct_out


def _make_kernels(computed: list[Tensor], storage: dict, folds: Folds) -> list[Kernel]:
    """One kernel per computed node, with the members, maxout and prologue it computes."""
    def where(t: Tensor) -> Storage:
        return storage[view_base(t).id]

    def where_read(t: Tensor) -> Optional[Storage]:
        # None: a folded node read for its shape only (broadcast_like's reference)
        return storage.get(view_base(t).id)

    prologue_of = folds.prologue_of
    kernels: list[Kernel] = []
    for s, n in enumerate(computed):
        label = n.attrs.get("label", n.op)
        hosted = folds.members_of.get(n.id, [])
        members = [Member(m, storage[m.id], [where(i) for i in m.inputs],
                          m.id not in folds.own_out_of)
                   for m in hosted if m.id not in folds.max_of]
        gmax = next((GroupMax(m, storage[m.id], group_max_pieces(m, view_base))
                     for m in hosted if m.id in folds.max_of), None)
        own = [m for m in members if not m.in_place]
        suffix = "".join("_grad" if m.node.op == "softmax_cross_entropy_grad" else
                         "_" + sanitize(m.node.attrs.get("label", m.node.op), 16)
                         for m in own[:2])
        suffix += f"_and_{len(own) - 2}_more" if len(own) > 2 else ""
        suffix += "_maxout" if gmax is not None else ""
        suffix += "_updates" if any(m.in_place for m in members) else ""
        prologue = None
        if n.id in prologue_of:  # the reduction computes its input: no buffer to read
            e = prologue_of[n.id]
            reads = {i.id for i in ew_parts(e)[1]}  # not broadcast_like's shape reference
            prologue = Prologue(e, [where(i) if i.id in reads else None for i in e.inputs])
            suffix = "_" + sanitize(e.attrs.get("label", e.op), 16) + suffix
        srcs = [None] if prologue is not None else [where_read(i) for i in n.inputs]
        kernels.append(Kernel(f"k{s}_{sanitize(label, 24)}{suffix}", kernel_kind(n), n,
                              where(n), srcs, members=members, group_max=gmax,
                              prologue=prologue))
    return kernels


def _add_copy_kernels(kernels: list[Kernel], output_slots: list, updates: list,
                      in_place: dict, storage: dict, names: dict) -> None:
    """Copies, after every kernel: outputs not computed into their slot, then update values
    not computed into their parameter."""
    def where(t: Tensor) -> Storage:
        return storage[view_base(t).id]

    for k, o in output_slots:
        if where(o) != Storage("slot", k, nbytes(view_base(o))):
            kernels.append(Kernel(f"k{len(kernels)}_copy_out", "copy", o,
                                  Storage("slot", k, nbytes(o)), [where(o)]))
    for p, v in updates:
        if v.id in in_place or view_base(v) is p:
            continue
        kernels.append(Kernel(f"k{len(kernels)}_update_{sanitize(names.get(p.id, p.name), 24)}",
                              "copy", v, storage[p.id], [where(v)]))


def _snapshot_updated_params(program: Program, outs: list, values: list):
    """Outputs and update values that are (views of) an updated parameter, read through an
    elementwise copy kernel.  Copies into output slots and parameters run after every kernel,
    and a parameter may be written in place before that (or by an earlier update copy), so
    reading the parameter there would see its new value: ``outputs=[p]`` with
    ``updates=[(p, p + 1)]`` returned p + 1, and ``updates=[(a, b), (b, a)]`` gave both b.  As
    kernels, the copies are readers like any other: in-place writes wait for them, and every
    update reads the old values."""
    from ..ops.registry import make
    from ..symbolic import A
    updated = {p.id for p, _ in program.updates}
    made: dict[int, Tensor] = {}

    def snapshot(t: Tensor) -> Tensor:
        if t.id not in made:
            made[t.id] = make("ew", [t], expr=A[0], label="copy", dtype=t.dtype)
        return made[t.id]

    def reads_updated(t: Tensor) -> bool:
        b = view_base(t)
        return b.op == "parameter" and b.id in updated

    outs = [snapshot(o) if reads_updated(o) else o for o in outs]
    values = [snapshot(v) if reads_updated(v) and view_base(v) is not p else v
              for (p, _), v in zip(program.updates, values)]
    return outs, values


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
