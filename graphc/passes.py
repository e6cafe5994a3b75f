"""Graph optimization passes run by ``gc.compile`` before any backend, as a named pipeline.

Each pass maps a list of root tensors to rewritten roots with the same values.  ``GRAPHC_DEBUG=1``
names each pass as it runs, ``=2`` also dumps the graph after it.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

import numpy as np

from .ir import Tensor, attrs_key, toposort
from .ops.core import constant
from .ops.registry import lookup
from .rewrite import rewrite

FOLD_LIMIT = 1 << 16  # largest constant (elements) that folding may materialize


# -- constant folding ---------------------------------------------------------------------------

def _fold(node: Tensor):
    """op(constants...) -> constant(value) for deterministic ops with small results."""
    if node.is_leaf or not all(i.op == "constant" for i in node.inputs):
        return None
    if lookup(node.op).kind in ("random",) or node.effects:
        return None
    if None in node.shape or int(np.prod(node.shape)) > FOLD_LIMIT:
        return None
    value = lookup(node.op).ref(node, *[i.attrs["value"] for i in node.inputs])
    return constant(np.asarray(value).astype(node.dtype), dtype=node.dtype)


def fold_constants(roots: Sequence[Tensor]) -> list[Tensor]:
    m = rewrite(roots, [_fold])
    return [m[r.id] for r in roots]


# -- algebraic simplification --------------------------------------------------------------------

def _drop_identity(node):
    # identity only carries effects, collected before the passes; stop_gradient matters only
    # to grad(), which has already run when a graph is compiled.
    if node.op in ("identity", "stop_gradient"):
        return node.inputs[0]
    return None


def _transpose_transpose(node):
    # transpose(transpose(x, p), q) = transpose(x, p[q])
    if node.op == "transpose" and node.inputs[0].op == "transpose":
        from .ops.core import transpose
        inner = node.inputs[0]
        perm = [inner.attrs["perm"][q] for q in node.attrs["perm"]]
        return transpose(inner.inputs[0], perm)
    return None


def _reshape_chain(node):
    # reshape(reshape(x)) = reshape(x); a reshape to the same static shape is x
    from .ops.core import reshape
    if node.op in ("reshape", "expand_dims", "squeeze") and node.inputs[0].shape == node.shape \
            and None not in node.shape:
        return node.inputs[0]
    if node.op == "reshape" and node.inputs[0].op == "reshape":
        return reshape(node.inputs[0].inputs[0], node.attrs["shape"])
    return None


def _broadcast_same(node):
    # broadcast_like / reshape_like to a statically equal shape is the identity
    if node.op in ("broadcast_like", "reshape_like") and node.inputs[0].shape == node.shape \
            and None not in node.shape:
        return node.inputs[0]
    return None


SIMPLIFY_RULES = [_drop_identity, _transpose_transpose, _reshape_chain, _broadcast_same]


def simplify(roots: Sequence[Tensor]) -> list[Tensor]:
    m = rewrite(roots, SIMPLIFY_RULES)
    return [m[r.id] for r in roots]


# -- common subexpression elimination -------------------------------------------------------------

def cse(roots: Sequence[Tensor]) -> list[Tensor]:
    """Merge nodes computing the same op with the same attributes on the same inputs."""
    seen: dict[tuple, Tensor] = {}

    def rule(node):
        if node.op in ("placeholder", "parameter"):
            return None
        key = (node.op, tuple(i.id for i in node.inputs), attrs_key(node.attrs))
        other = seen.setdefault(key, node)
        return other if other is not node else None

    m = rewrite(roots, [rule], max_iter=2)
    return [m[r.id] for r in roots]


def eliminate_dead_code(roots: Sequence[Tensor]) -> list[Tensor]:
    """Graphs are reachability-defined: only what the roots need survives any later walk.
    Kept as a named pass so the pipeline reads like the design (and debug dumps show it)."""
    return list(roots)


Pass = Callable[[Sequence[Tensor]], list]

PIPELINE: list[tuple[str, Pass]] = [
    ("fold_constants", fold_constants),
    ("simplify", simplify),
    ("cse", cse),
    ("eliminate_dead_code", eliminate_dead_code),
]


def dump(roots: Sequence[Tensor], out=None) -> None:
    out = sys.stderr if out is None else out  # looked up at call time (redirections)
    for n in toposort(list(roots)):
        args = ", ".join(i.name for i in n.inputs)
        label = n.attrs.get("label", n.op)
        print(f"  {n.name} = {label}({args}) {n.shape} {n.dtype}", file=out)


def run_pipeline(roots: Sequence[Tensor], pipeline=None) -> list[Tensor]:
    """Run ``pipeline`` (default ``PIPELINE``) over ``roots``, honouring GRAPHC_DEBUG."""
    level = int(os.environ.get("GRAPHC_DEBUG", "0") or 0)
    roots = list(roots)
    for name, fn in (PIPELINE if pipeline is None else pipeline):
        roots = fn(roots)
        if level >= 1:
            print(f"graphc: pass {name}: {len(toposort(roots))} nodes", file=sys.stderr)
        if level >= 2:
            dump(roots)
    return roots
