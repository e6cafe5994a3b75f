"""Per-kernel plans the renderers share: what an elementwise kernel with members computes per
element (``fused_plan``, ``plan_loop``, ``linear_update``), what a reduction reads
(``reduce_read``) and what a cross-entropy row kernel writes (``xent_parts``).  The C and GPU
renderers differ only in how they spell these."""
from __future__ import annotations

from ..ir import Tensor
from .layout import collapse, merge_groups, strides_for
from .model import FusedPlan, Kernel, ReduceRead, Storage, XentParts, numel

def ew_parts(node: Tensor):
    """(SymPy expression, input tensors) an elementwise kernel computes for ``node``: ``ew``
    nodes carry theirs; broadcast_like copies its first input; fill_like has no inputs."""
    if node.op == "ew":
        return node.attrs["expr"], list(node.inputs)
    if node.op == "broadcast_like":
        from ..symbolic import A
        return A[0], [node.inputs[0]]
    if node.op == "fill_like":
        import sympy as sp
        return sp.Float(node.attrs["value"]), []
    raise AssertionError(node.op)

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
    from ..symbolic import A
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
        full = [strides_for(shape, shape) if numel(t.shape) > 1 else [0] * len(shape)
                for t, _ in operands]
    groups, strides = merge_groups(shape, axes, full)
    return ReduceRead(groups, operands, strides, expr, e)

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
        from ..symbolic import A
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

    from ..symbolic import A
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

def xent_parts(k: Kernel) -> XentParts:
    if k.node.op == "softmax_cross_entropy_grad":
        return XentParts(None, k.node, k.srcs[2], k.dst)
    m = k.members[0] if k.members else None
    return XentParts(k.node, m and m.node, m and m.srcs[2], m and m.dst)
