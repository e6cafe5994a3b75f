"""Backend passes: specialize shapes, then fuse.  Run by the C and GPU backends after the
generic pipeline (graphc.passes), before lowering.

* ``concretize``: rebuild the graph with the concrete shapes of one call, so every shape is
  static and run-time sizes (``size_of``) become constants.
* ``fuse_elementwise``: an ``ew`` producer read by exactly one ``ew`` consumer of the same
  element count is substituted into the consumer's expression (f(g(x)) is one loop).
* ``fuse_dense``: ``epilogue(matmul(a, b))`` -> ``dense(a, b, extras, expr)``, with transposes
  of the operands folded into the GEMM's trans flags; batched matmuls the same (``bmm``: a
  transpose of the last two axes of an operand, or of the product, moves nothing).

Every pass takes an optional ``trace`` dict that it fills with old node id -> new node.
"""
from __future__ import annotations

import operator
from typing import Sequence

import numpy as np
import sympy as sp
from sympy.core.parameters import evaluate

from .ir import Tensor, consumers, format_shape, is_float, toposort
from .ops.core import constant, placeholder
from .ops.registry import make
from .rewrite import rebuild, rewrite
from .symbolic import A


def use_counts(roots: Sequence[Tensor]) -> dict[int, int]:
    """Number of reads of each node, counting each appearance among ``roots`` as a read."""
    counts: dict[int, int] = {}
    for n in toposort(list(roots)):
        for i in n.inputs:
            counts[i.id] = counts.get(i.id, 0) + 1
    for r in roots:
        counts[r.id] = counts.get(r.id, 0) + 1
    return counts


# -- concretize --------------------------------------------------------------------------------

def concretize(roots: Sequence[Tensor], inputs: Sequence[Tensor], shapes: Sequence[tuple],
               trace: dict | None = None):
    """The graph of ``roots`` re-inferred with placeholder ``inputs`` of concrete ``shapes``.

    Returns (new roots, new placeholders in the order of ``inputs``)."""
    leaf_map = {}
    new_inputs = []
    for p, shape in zip(inputs, shapes):
        q = placeholder(tuple(shape), p.dtype, name=p._name)
        leaf_map[p.id] = q
        new_inputs.append(q)

    def fold_size(node):
        if node.op == "size_of" and None not in node.inputs[0].shape:
            dims = [node.inputs[0].shape[a] for a in node.attrs["axes"]]
            return constant(np.asarray(np.prod(dims), dtype=node.dtype), dtype=node.dtype)
        if node.op == "sum_like" and None not in node.inputs[0].shape \
                and None not in node.inputs[1].shape:
            from .ops.core import unbroadcast
            return unbroadcast(*node.inputs)
        return None

    m = rewrite(roots, [fold_size, _fold_uniform], leaf_map=leaf_map)
    if trace is not None:
        trace.update(m)
    return [m[r.id] for r in roots], new_inputs


def _fold_uniform(node):
    """Uniform tensors (every element the same) folded into one ``fill_like``: the gradient
    seed of a mean, 1 broadcast to the losses' shape and divided by their count, was three
    kernels (fill, broadcast, divide); now it is one fill of 1/N.  A transposed fill is a
    fill.  Only static shapes, the fill's dtype, and finite values (the C literal)."""
    if node.op == "broadcast_like":
        fill, ref = node.inputs
        while fill.op in ("reshape", "expand_dims", "squeeze", "identity"):  # views of it
            fill = fill.inputs[0]
        if fill.op == "fill_like" and ref.dtype == fill.dtype and None not in ref.shape:
            return make("fill_like", [ref], value=fill.attrs["value"])
        return None
    if node.op == "transpose" and None not in node.shape:
        # a fill has nothing to move: the backward of a transpose under a plain sum was a
        # transpose kernel moving a tensor of ones.  The shape source is a reshape of the
        # fill's (a view: a transpose there would be computed for its shape)
        from .ops.core import reshape
        fill = node.inputs[0]
        while fill.op in ("reshape", "reshape_like", "expand_dims", "squeeze", "identity"):
            fill = fill.inputs[0]  # views of it (merge heads' gradient is a reshaped fill)
        if fill.op != "fill_like" or fill.dtype != node.dtype:
            return None
        return make("fill_like", [reshape(fill.inputs[0], node.shape)],
                    value=fill.attrs["value"])
    if node.op != "ew" or not node.inputs:
        return None
    fills = [t for t in node.inputs if t.op == "fill_like" and t.shape == node.shape]
    if fills and None not in node.shape and any(
            t.op != "fill_like" and tuple(t.shape) == tuple(node.shape) for t in node.inputs):
        # another input has the full shape: each fill becomes a one-element constant read by
        # the same loop (a weighted loss's ones * w was a kernel writing ones, then one reading
        # them); the constant holds the fill's exact value (-0.0 and large int64 included)
        inputs = [constant(np.full((), t.attrs["value"], dtype=t.dtype), dtype=t.dtype)
                  if t.op == "fill_like" else t for t in node.inputs]
        return make("ew", inputs, name=node._name, **node.attrs)
    if not fills or node.dtype != fills[0].dtype or None in node.shape or any(
            t.op not in ("fill_like", "constant") or (t.op == "constant" and _numel(t.shape) != 1)
            for t in node.inputs):
        return None
    from .ops.registry import lookup
    values = [np.full((), t.attrs["value"], dtype=t.dtype) if t.op == "fill_like"
              else np.asarray(t.attrs["value"]).reshape(()) for t in node.inputs]
    with np.errstate(all="ignore"):
        value = np.asarray(lookup("ew").ref(node, *values)).reshape(-1)[0]
    if not np.isfinite(value):
        return None
    # the fill's value is a float attribute rendered through sp.Float (lower.ew_parts): fold
    # only values it carries exactly.  -0.0 would become +0.0 (1 / (0 * -1) gave +inf, not
    # -inf), and an int64 beyond 2**53 would be rounded (ones * (2**53 + 1) gave 2**53)
    py = value.item()
    if float(py) != py or (py == 0 and np.signbit(value)):
        return None
    return make("fill_like", [fills[0].inputs[0]], value=float(value))


# -- fuse_elementwise --------------------------------------------------------------------------

def _numel(shape) -> int:
    return int(np.prod(shape)) if shape else 1


def _inline(consumer_expr, consumer_inputs, k, producer):
    """Substitute producer's expression for argument k of the consumer: (expr, inputs), or
    None when the result would be too large (the two nodes then stay separate kernels)."""
    inputs = list(consumer_inputs)
    base = len(inputs)
    sub_expr = producer.attrs["expr"].xreplace(
        {A[j]: A[base + j] for j in range(len(producer.inputs))})
    inputs.extend(producer.inputs)
    cond = _as_condition(sub_expr)
    if cond is not None:
        # a comparison used as a condition: where(c, a, b) reads Ne(c, 0); put the comparison
        # itself there (a Piecewise inside a condition sends SymPy into a costly set rewrite)
        consumer_expr = consumer_expr.xreplace({sp.Ne(A[k], 0): cond})
    expr = _substitute(consumer_expr, A[k], sub_expr, [MAX_LIFTED_BRANCHES])
    return None if expr is None else (expr, inputs)


MAX_LIFTED_BRANCHES = 32  # copies of a consumer that lifting Piecewise producers may make


def _in_condition(expr, sym) -> bool:
    """Whether ``sym`` occurs in a condition of one of the Piecewise of ``expr``."""
    return any(sym in c.free_symbols for p in expr.atoms(sp.Piecewise) for _, c in p.args)


_COMPARE = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
            "==": operator.eq, "!=": operator.ne}


def _fold_closed_conditions(expr):
    """Decide conditions without symbols (a constant branch substituted into a comparison,
    ``-1 > 0``): left unevaluated, they break SymPy's Piecewise canonicalization later."""
    reps = {}
    for r in expr.atoms(sp.core.relational.Relational):
        if not r.free_symbols and r.rel_op in _COMPARE:
            try:
                lhs, rhs = float(r.lhs.evalf()), float(r.rhs.evalf())
            except TypeError:
                continue
            reps[r] = sp.true if _COMPARE[r.rel_op](lhs, rhs) else sp.false
    return expr.xreplace(reps) if reps else expr


def _substitute(expr, sym, value, budget):
    """expr with ``sym`` replaced by ``value``, keeping every Piecewise condition free of
    Piecewise; None when that takes more than ``budget[0]`` branches.

    A Piecewise inside a condition (relu(relu(x)): Piecewise(...) > 0) makes SymPy rewrite the
    condition through set logic (ExprCondPair -> piecewise_fold -> ITE -> as_set), which is
    slow and crashes (ZeroDivisionError, RecursionError) on unevaluated expressions.  Instead
    the producer's outermost Piecewise is lifted over the whole consumer:
    f(s(Piecewise((e1, c1), (e2, c2)))) = Piecewise((f(s(e1)), c1), (f(s(e2)), c2))."""
    if not value.has(sp.Piecewise) or not _in_condition(expr, sym):
        return _fold_closed_conditions(expr.xreplace({sym: value}))
    q = next(p for p in sp.preorder_traversal(value) if isinstance(p, sp.Piecewise))
    budget[0] -= len(q.args) - 1
    if budget[0] < 0:
        return None
    branches = []
    for e, c in q.args:
        branch = _substitute(expr, sym, value.xreplace({q: e}), budget)
        if branch is None:
            return None
        branches.append((branch, c))
    return sp.Piecewise(*branches)


def _as_condition(expr):
    """c for expressions of the form Piecewise((1, c), (0, True)) (our comparisons), else None."""
    if isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[0].expr == 1 \
            and expr.args[1].expr == 0 and expr.args[1].cond == sp.true:
        return expr.args[0].cond
    return None


def _can_inline(producer: Tensor, consumer: Tensor, reads_inside: bool) -> bool:
    # reads_inside: every read of the producer is by the consumer or by a node already fused
    # into it (so it is computed once per element either way, and never materialized);
    # int producers could truncate (casts), which inlining into a float context would skip;
    # booleans inline when they are plain comparisons
    return (producer.op == "ew" and reads_inside
            and (is_float(producer.dtype) or (producer.dtype == "bool"
                                              and _as_condition(producer.attrs["expr"])
                                              is not None))
            and _numel(producer.shape) == _numel(consumer.shape)
            and producer.shape == consumer.shape[len(consumer.shape) - len(producer.shape):])


MAX_FUSED_INPUTS = 16  # a kernel argument list bound (GPU kernels take each input by pointer)

# A producer read k times is substituted k times: a chain of such nodes (y = y * y + y, n
# times) doubles the expression *tree* per level (a DAG in memory, but printing, CSE and
# lambdify walk trees: 16 levels took 10 s to compile on C).  Multi-read inlining stops where
# the tree would pass this many nodes (the flushed optimizer updates: at most 26).
MAX_DUPLICATED_TREE = 400


def _tree_size(expr) -> int:
    """Nodes of ``expr`` counted as a tree (shared subexpressions once per use), in time
    linear in its DAG."""
    sizes: dict[int, int] = {}
    stack = [(expr, False)]
    while stack:
        e, done = stack.pop()
        if id(e) in sizes:
            continue
        if done:
            sizes[id(e)] = 1 + sum(sizes[id(a)] for a in e.args)
        else:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if id(a) not in sizes)
    return sizes[id(expr)]


def fuse_elementwise(roots: Sequence[Tensor], trace: dict | None = None) -> list[Tensor]:
    # substituting expressions needs no re-simplification, which is slow: switch it off once
    # for the pass (each switch clears SymPy's cache)
    with evaluate(False):
        return _fuse_elementwise(roots, trace)


def _fuse_elementwise(roots, trace):
    counts = use_counts(roots)
    mapping: dict[int, Tensor] = {}
    original: dict[int, Tensor] = {}  # new node id -> the old node it replaces (for counts)
    from .ops.elementwise import canonical, ew
    members: dict[int, list[Tensor]] = {}  # new fused node id -> the old nodes it computes
    for node in toposort(list(roots)):
        new = rebuild(node, [mapping.get(i.id, i) for i in node.inputs])
        if node.op == "ew":
            expr, inputs = node.attrs["expr"], list(new.inputs)
            labels = [node.attrs["label"]]
            group = [node]  # the old nodes fused into this one so far
            changed = True
            while changed:
                changed = False
                for k, inp in enumerate(inputs):
                    old = original.get(inp.id, inp)
                    # a producer read only inside the group inlines even when read twice
                    # (where(|m| < tiny, 0, m): m is computed once, CSE'd when printed)
                    reads_inside = counts.get(old.id, 0) == sum(
                        1 for g in group for i in g.inputs if i is old)
                    if len(inputs) + len(inp.inputs) <= MAX_FUSED_INPUTS and _can_inline(
                            inp, node, reads_inside):
                        inlined = _inline(expr, inputs, k, inp)
                        if inlined is None or (counts.get(old.id, 0) > 1 and _tree_size(
                                inlined[0]) > MAX_DUPLICATED_TREE):
                            continue
                        group.extend(members.get(inp.id, [old]))
                        expr, kept = canonical(*inlined)
                        # an expression without symbols ((x + 1) * 0) still needs an input
                        # for its shape: keep them all as unused arguments (ew() does too)
                        inputs = kept or list({id(t): t for j, t in enumerate(inlined[1])
                                               if j != k}.values())
                        labels.insert(0, inp.attrs["label"])
                        changed = True
                        break
            if len(labels) > 1:
                new = ew(expr, inputs, label="+".join(dict.fromkeys(labels)), dtype=node.dtype)
                new._name = node._name
                members[new.id] = group
        mapping[node.id] = new
        original[new.id] = node
    if trace is not None:  # old node id -> new node, for provenance (which kernel computes what)
        trace.update(mapping)
    return [mapping[r.id] for r in roots]


# -- fuse_dense --------------------------------------------------------------------------------

def _operand(t: Tensor) -> tuple[Tensor, bool]:
    """(tensor, transposed): a 2-D transpose folds into the GEMM's trans flag."""
    if t.op == "transpose" and t.attrs["perm"] == (1, 0):
        return t.inputs[0], True
    return t, False


def _batched_operand(t: Tensor) -> tuple[Tensor, bool]:
    """(tensor, transposed): a transpose of only the last two axes folds into a batched GEMM's
    trans flag (each batch's matrix is read in the other order, nothing is moved)."""
    n = t.ndim
    if t.op == "transpose" and t.attrs["perm"] == tuple(range(n - 2)) + (n - 1, n - 2):
        return t.inputs[0], True
    return t, False


def _bmm_from(mm: Tensor) -> Tensor:
    """A batched matmul reading transposed operands in place (``bmm``), else ``mm``."""
    (a, ta), (b, tb) = _batched_operand(mm.inputs[0]), _batched_operand(mm.inputs[1])
    if not (ta or tb):
        return mm
    new = make("bmm", [a, b], trans_a=ta, trans_b=tb)
    new._name = mm._name
    return new


def _reshape(t: Tensor, shape: tuple) -> Tensor:
    from .ops.core import reshape
    return reshape(t, shape)


def _rows_product(mm: Tensor) -> bool:
    """x (batch.., K) @ W (K, N) with x not a transposed view: one 2-D GEMM over all the rows
    of x (it is contiguous), so it becomes a dense and gets the dense's fused epilogue."""
    a, b = mm.inputs
    return (mm.op == "matmul" and a.ndim > 2 and b.ndim == 2 and a.op != "transpose"
            and None not in a.shape and None not in b.shape)


def _row_broadcast(shape: tuple, out_shape: tuple):
    """The 2-D shape an epilogue input of ``shape`` is read as when ``out_shape`` (batch.., N)
    is computed as (rows, N): itself full-size, (N,) along the last axis, () for one
    element; None when it varies along a batch axis without being full-size."""
    shape = tuple(shape)
    if shape == tuple(out_shape):
        return (_numel(out_shape[:-1]), out_shape[-1])
    if _numel(shape) == 1:
        return ()
    if len(shape) >= 1 and shape[-1] == out_shape[-1] and _numel(shape[:-1]) == 1:
        return (out_shape[-1],)
    return None


def _dense_from(mm: Tensor, expr, extras, label, dtype) -> Tensor:
    a, ta = _operand(mm.inputs[0])
    b, tb = _operand(mm.inputs[1])
    return make("dense", [a, b] + list(extras), trans_a=ta, trans_b=tb, expr=expr,
                label=label, dtype=dtype)


def fuse_dense(roots: Sequence[Tensor], trace: dict | None = None) -> list[Tensor]:
    with evaluate(False):
        return _fuse_dense(roots, trace)


def _fuse_dense(roots, trace):
    order = toposort(list(roots))
    counts = use_counts(roots)
    users = consumers(order)

    def absorbable_shape(mm: Tensor) -> bool:
        # one reader, an ew of the same shape and dtype
        readers = users.get(mm.id, [])
        return (counts.get(mm.id, 0) == 1 and len(readers) == 1 and readers[0].op == "ew"
                and readers[0].shape == mm.shape and readers[0].dtype == mm.dtype)

    def absorbable(mm: Tensor) -> bool:
        # ... of a 2-D product: the ew becomes the GEMM's epilogue
        return mm.ndim == 2 and absorbable_shape(mm)

    def bare(mm: Tensor) -> Tensor:
        return _dense_from(mm, A[0], [], "dense", mm.dtype)

    def flat_absorbable(mm: Tensor) -> bool:
        # a rows product (see _rows_product) whose one reader is an ew of its shape whose other
        # inputs are full-shape, one element, or vary along the last axis only (a bias): that
        # ew becomes the epilogue of the 2-D GEMM, its inputs read as (rows, N)
        if not (absorbable_shape(mm) and _rows_product(mm)):
            return False
        ew = users[mm.id][0]
        return all(t is mm or _row_broadcast(t.shape, mm.shape) is not None for t in ew.inputs)

    def materialized(old: Tensor, new: Tensor) -> Tensor:
        """An epilogue input as a computed value: a GEMM left for an ew to absorb that this ew
        does not absorb (it absorbs one) becomes a plain dense; a batched product (a matmul
        of more than two dimensions that is not a rows product) stays the batched matmul."""
        if old.id in flat:
            return _reshape(bare(flat[old.id]), old.shape)
        return bare(new) if new.op == "matmul" and new.ndim == 2 else new

    mapping: dict[int, Tensor] = {}
    flat: dict[int, Tensor] = {}  # rows product id -> its 2-D matmul, left for the ew to absorb
    for node in order:
        inputs = [mapping.get(i.id, i) for i in node.inputs]
        if node.op == "matmul" and node.ndim == 2:
            new = rebuild(node, inputs)
            mapping[node.id] = new if absorbable(node) else bare(new)
            continue
        if node.op == "matmul" and _rows_product(node):
            a, b = inputs
            mm2 = make("matmul", [_reshape(a, (_numel(a.shape[:-1]), a.shape[-1])), b])
            if flat_absorbable(node):
                flat[node.id] = mm2
                mapping[node.id] = _reshape(mm2, node.shape)  # read only by the ew, which absorbs it
            else:
                mapping[node.id] = _reshape(bare(mm2), node.shape)
            continue
        if node.op == "ew":
            k = next((j for j, old in enumerate(node.inputs) if old.id in flat), None)
            if k is not None:
                mm2 = flat[node.inputs[k].id]
                extras = [_reshape(materialized(old, t), _row_broadcast(t.shape, node.shape))
                          for j, (old, t) in enumerate(zip(node.inputs, inputs)) if j != k]
                remap = {A[k]: A[0]}
                for pos, j in enumerate(j for j in range(len(inputs)) if j != k):
                    remap[A[j]] = A[pos + 1]
                expr = node.attrs["expr"].xreplace(remap)
                new = _reshape(_dense_from(mm2, expr, extras, "dense+" + node.attrs["label"],
                                           node.dtype), node.shape)
                new._name = node._name
                mapping[node.id] = new
                continue
        if node.op == "matmul":  # batched: q @ k^T and every matmul's backward
            mapping[node.id] = _bmm_from(rebuild(node, inputs))
            continue
        if node.op == "transpose" and counts.get(node.inputs[0].id, 0) == 1 \
                and inputs[0].op in ("matmul", "bmm") and _batched_operand(node)[1]:
            # (op(A) op(B))^T = op(B)^T op(A)^T: the gradient of k in q @ k^T was a GEMM
            # into a temporary and a transpose of it
            mm = inputs[0]
            new = make("bmm", [mm.inputs[1], mm.inputs[0]],
                       trans_a=not mm.attrs.get("trans_b", False),
                       trans_b=not mm.attrs.get("trans_a", False))
            new._name = node._name
            mapping[node.id] = new
            continue
        if node.op == "ew":
            k = next((j for j, (old, new_in) in enumerate(zip(node.inputs, inputs))
                      if old.op == "matmul" and new_in.op == "matmul" and absorbable(old)), None)
            if k is not None:
                extras = [bare(t) if t.op == "matmul" else t
                          for j, t in enumerate(inputs) if j != k]
                remap = {A[k]: A[0]}
                for pos, j in enumerate(j for j in range(len(inputs)) if j != k):
                    remap[A[j]] = A[pos + 1]
                expr = node.attrs["expr"].xreplace(remap)
                new = _dense_from(inputs[k], expr, extras, "dense+" + node.attrs["label"],
                                  node.dtype)
                new._name = node._name
                mapping[node.id] = new
                continue
        mapping[node.id] = rebuild(node, [bare(t) if t.op == "matmul" and t.ndim == 2 else t
                                          for t in inputs])
    if trace is not None:  # old node id -> new node, for provenance (which kernel computes what)
        trace.update(mapping)
    return [mapping[r.id] for r in roots]


# -- integer matmul ----------------------------------------------------------------------------

MAX_INTEGER_MATMUL = 1 << 26  # products (m * k * n) of one integer matmul on C / GPU

def integer_matmul(roots: Sequence[Tensor], trace: dict | None = None) -> list[Tensor]:
    """The GEMM kernels compute in floating point: an integer or boolean matmul becomes exact
    integer ops instead, sum over k of a[..., :, :, None] * b[..., None, :, :] (integer
    products and sums wrap like numpy's; booleans give "any of the ands")."""
    from .ops.core import expand_dims, sum as sum_
    from .ops.elementwise import cast, mul

    def rule(node):
        if node.op != "matmul" or is_float(node.dtype):
            return None
        a, b = node.inputs
        work = _numel(node.shape) * (a.shape[-1] if a.ndim > 1 else a.shape[0])
        if work > MAX_INTEGER_MATMUL:
            # the m x k x n products are an intermediate: refuse before allocating gigabytes
            raise NotImplementedError(
                f"matmul of {node.dtype} {format_shape(a.shape)} @ {format_shape(b.shape)}: "
                f"integer matmuls are computed exactly through their {work} products, more "
                f"than the {MAX_INTEGER_MATMUL} the compiled backends allow; cast the operands "
                f"to float64 (exact up to 2**53) or use the numpy backend")
        out = sum_(mul(expand_dims(a, -1), expand_dims(b, -3)), axis=-2)
        return cast(out, node.dtype) if out.dtype != node.dtype else out

    m = rewrite(roots, [rule])
    if trace is not None:
        trace.update(m)
    return [m[r.id] for r in roots]


BACKEND_PIPELINE = [("integer_matmul", integer_matmul), ("fuse_elementwise", fuse_elementwise),
                    ("fuse_dense", fuse_dense)]
