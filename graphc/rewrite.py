"""Graph rewriting: rebuild a graph bottom-up, applying rules to a fixed point.

A rule is a function ``rule(node) -> Tensor | None``: a replacement for ``node`` (built from
ordinary constructors) or None when the pattern does not match.  The engine knows no op by name.
Nodes whose inputs did not change and that no rule replaced are kept as they are (same ids).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

from .ir import Tensor, toposort
from .ops.registry import make

Rule = Callable[[Tensor], Optional[Tensor]]


def rebuild(node: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    """``node`` with new ``inputs`` (the same node when nothing changed)."""
    if all(a is b for a, b in zip(node.inputs, inputs)):
        return node
    attrs = dict(node.attrs)
    new = make(node.op, list(inputs), name=node._name, effects=node.effects, **attrs)
    new.where = node.where
    return new


def rewrite(roots: Iterable[Tensor], rules: Sequence[Rule], max_iter: int = 50,
            leaf_map: Optional[dict] = None) -> dict[int, Tensor]:
    """Apply ``rules`` to every node reachable from ``roots``, inputs first, each node to a
    fixed point.  Returns the map from old node id to new node.  ``leaf_map`` (old id -> node)
    substitutes leaves."""
    mapping: dict[int, Tensor] = dict(leaf_map or {})
    for node in toposort(list(roots)):
        if node.id in mapping:
            continue
        new = rebuild(node, [mapping.get(i.id, i) for i in node.inputs])
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
