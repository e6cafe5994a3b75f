"""Symbol-to-symbol reverse-mode differentiation (Goodfellow et al., Algorithm 6.2).

``grad`` walks the graph in reverse topological order filling a ``grad_table``: the gradient of
the cost with respect to each node is the sum, over the node's consumers, of the contributions
their gradient rules return.  Every contribution is an ordinary graph node, so the result can be
compiled, exported and differentiated again.  Un-broadcasting happens here, in one place.
"""
from __future__ import annotations

from typing import Sequence

from .errors import ShapeError
from .ir import Tensor, format_shape, is_float, toposort
from .ops import elementwise as E
from .ops.core import sum_like, unbroadcast, zeros_like
from .ops.registry import lookup, make


def _depends_on(order: Sequence[Tensor], targets: Sequence[Tensor]) -> set[int]:
    """Ids of nodes in ``order`` through which a gradient can reach one of ``targets``."""
    live = {t.id for t in targets}
    for node in order:
        if node.id not in live and any(i.id in live for i in node.inputs):
            if lookup(node.op).differentiable:
                live.add(node.id)
    return live


def add_n(terms: list[Tensor]) -> Tensor:
    """Sum of gradient contributions (the fan-out sum of Algorithm 6.2)."""
    out = terms[0]
    for t in terms[1:]:
        out = E.add(out, t)
    return out


def backprop(cost: Tensor, wrt: Sequence[Tensor]) -> dict[int, Tensor]:
    """Algorithm 6.2: the grad_table from node id to d cost / d node for every node on a path
    from ``wrt`` to ``cost``."""
    order = toposort([cost])
    live = _depends_on(order, wrt)
    # the seed d cost / d cost = 1, marked so tools (export) can tell it from a user's ones_like
    seed = make("fill_like", [cost], value=1.0, grad_seed=True)
    pending: dict[int, list[Tensor]] = {cost.id: [seed]}
    table: dict[int, Tensor] = {}
    for node in reversed(order):
        contributions = pending.pop(node.id, None)
        if not contributions:
            continue
        g = add_n(contributions)
        table[node.id] = g
        if node.is_leaf:
            continue
        rule = lookup(node.op).grad
        if rule is None:
            continue
        needed = [i.id in live and is_float(i.dtype) for i in node.inputs]
        if not any(needed):
            continue
        for inp, gi, want in zip(node.inputs, rule(node, g), needed):
            if gi is None or not want:
                continue
            if gi.dtype != inp.dtype:
                gi = E.cast(gi, inp.dtype)
            gi = sum_like(gi, inp) if _broadcast_at_run_time(node, inp) else unbroadcast(gi, inp)
            pending.setdefault(inp.id, []).append(gi)
    return table


def _broadcast_at_run_time(node: Tensor, x: Tensor) -> bool:
    """Whether ``node`` may broadcast its input ``x`` along a free dimension: x has None on an
    axis where another operand's size is not 1 (None or known).  Only the call's shapes tell
    whether x is then 1 there (a (1, 3) fed to a (None, 3) placeholder against a (4, 3) one),
    so x's gradient is summed down to x's run-time shape there."""
    kind = lookup(node.op).kind
    if kind not in ("elementwise", "matmul") or len(node.inputs) < 2:
        return False
    skip = 2 if kind == "matmul" else 0  # matmul broadcasts its batch axes only
    for axis in range(1 + skip, x.ndim + 1):
        if x.shape[-axis] is None and any(
                o is not x and o.ndim >= axis and o.shape[-axis] != 1 for o in node.inputs):
            return True
    return False


def grad(cost: Tensor, wrt):
    """Symbolic gradient of the scalar ``cost`` with respect to a tensor or a list of tensors.

    Returns graph tensors of the same shapes (a list when ``wrt`` is a list); a ``wrt`` the cost
    does not depend on gets zeros.  The result is an ordinary graph (compile it, or
    differentiate it again).

    Raises ``gc.ShapeError`` if ``cost`` is not a float scalar (reduce it with ``gc.sum`` or
    ``gc.mean`` first) and ``TypeError`` if ``cost`` or an entry of ``wrt`` is not a tensor."""
    if not isinstance(cost, Tensor):
        raise TypeError(f"grad: cost must be a graphc Tensor, got {type(cost).__name__}")
    if cost.shape != ():
        raise ShapeError(f"grad: cost must be a scalar, got shape {format_shape(cost.shape)} "
                         f"({cost.name}); reduce it with gc.sum or gc.mean first")
    if not is_float(cost.dtype):
        raise ShapeError(f"grad: cost must be a float tensor, got {cost.dtype}")
    single = isinstance(wrt, Tensor)
    targets = [wrt] if single else list(wrt)
    for t in targets:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: wrt entries must be graphc Tensors, got {type(t).__name__}")
        if not is_float(t.dtype):
            raise ShapeError(f"grad: cannot differentiate with respect to {t.name} of dtype "
                             f"{t.dtype}")
    table = backprop(cost, targets)
    out = [table[t.id] if t.id in table else zeros_like(t) for t in targets]
    return out[0] if single else out
