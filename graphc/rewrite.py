"""Graph rewriting: rebuild a graph bottom-up, applying rules to a fixed point.

A rule is a function ``rule(node) -> Tensor | None``: a replacement for ``node`` (built from
ordinary constructors) or None when the pattern does not match.  The engine knows no op by name.
Nodes whose inputs did not change and that no rule replaced are kept as they are (same ids).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

from .errors import ShapeError
from .ir import Tensor, toposort
from .ops.registry import make

Rule = Callable[[Tensor], Optional[Tensor]]


def rebuild(node: Tensor, inputs: Sequence[Tensor], mapping: Optional[dict] = None) -> Tensor:
    """``node`` with new ``inputs`` (the same node when nothing changed).  With ``mapping``
    (old id -> new node) the node's effects are mapped too; an effect whose target is no longer
    a parameter (e.g. replaced by a placeholder) is dropped."""
    effects = node.effects
    if mapping is not None and effects:
        effects = tuple((mapping.get(p.id, p), mapping.get(v.id, v)) for p, v in effects)
        effects = tuple((p, v) for p, v in effects if p.op == "parameter")
    if all(a is b for a, b in zip(node.inputs, inputs)) and len(effects) == len(node.effects) \
            and all(a is b for e, f in zip(effects, node.effects) for a, b in zip(e, f)):
        return node
    attrs = dict(node.attrs)
    try:
        new = make(node.op, list(inputs), name=node._name, effects=effects, **attrs)
    except ShapeError as e:
        # re-inferred for other shapes (a compiled backend's fed ones): the node was built
        # where node.where says, not where this rebuild was called from (the call of f)
        msg = str(e)
        cut = msg.rfind(" (built at ")
        raise type(e)(f"{msg[:cut] if cut >= 0 else msg} (built at {node.where})") from None
    new.where = node.where
    return new


def order_with_effects(roots: list) -> list:
    """Topological order of ``roots`` and of the new-value graphs of the effects they reach
    (those graphs hang off nodes, not off the roots), effect values first so that a rebuilt
    node can refer to their rewritten form."""
    extra: list = []
    seen: set = set()
    while True:
        order = toposort(extra + roots)
        found = [v for n in order for _, v in n.effects if v.id not in seen]
        if not found:
            return order
        seen.update(v.id for v in found)
        extra = found + extra


def rewrite(roots: Iterable[Tensor], rules: Sequence[Rule], max_iter: int = 50,
            leaf_map: Optional[dict] = None) -> dict[int, Tensor]:
    """Apply ``rules`` to every node reachable from ``roots``, inputs first, each node to a
    fixed point.  Returns the map from old node id to new node.  ``leaf_map`` (old id -> node)
    substitutes leaves."""
    mapping: dict[int, Tensor] = dict(leaf_map or {})
    for node in order_with_effects(list(roots)):
        if node.id in mapping:
            continue
        new = rebuild(node, [mapping.get(i.id, i) for i in node.inputs], mapping)
        for _ in range(max_iter):
            for rule in rules:
                out = rule(new)
                if out is not None and out is not new:
                    new = out
                    break
            else:
                break
        mapping[node.id] = new
    return mapping
