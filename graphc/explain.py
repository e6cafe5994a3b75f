"""``gc.explain``: Algorithm 6.2's walk printed as a table, the way the lectures work it by hand.

For each node of the cost's graph (forward order): its name, op, forward value (or shape when
large) and the gradient of the cost with respect to it, read from the same grad_table that
``gc.grad`` builds.
"""
from __future__ import annotations

import numpy as np

from .autodiff import backprop
from .errors import ShapeError
from .ir import Tensor, format_shape, is_float, toposort
from .program import Program, check_feed
from .runtime.interp import NumpyExecutable


class Explanation(str):
    """The printed table (a str) with the rows as dicts in ``.rows``."""

    rows: list


def _show(v) -> str:
    v = np.asarray(v)
    if v.size <= 6:
        if not v.ndim:
            return f"{v.item():.6g}"
        # one line per table row: a matrix prints its rows on separate lines otherwise
        text = np.array2string(v, precision=4, separator=", ", max_line_width=10 ** 6)
        return " ".join(line.strip() for line in text.splitlines())
    return f"shape {v.shape}"


def _resolve_feed(feed: dict, placeholders: list) -> dict:
    """``feed`` keyed by the placeholders themselves (names accepted too); ``ValueError``
    naming the placeholders without a value."""
    by_name = {k: v for k, v in feed.items() if isinstance(k, str)}
    out, missing = {}, []
    for p in placeholders:
        if p in feed:
            out[p] = feed[p]
        elif p.name in by_name:
            out[p] = by_name[p.name]
        else:
            missing.append(p.name)
    if missing:
        raise ValueError(f"explain: the feed has no value for placeholder(s) "
                         f"{', '.join(map(repr, missing))}, which the cost depends on")
    return out


def explain(cost: Tensor, feed: dict, show: bool = True) -> Explanation:
    """Print and return the forward values and backward gradients of every node of ``cost``.

    ``feed``: a dict from placeholders (or their names) to arrays, one for every placeholder
    ``cost`` depends on.  Raises ``TypeError`` if ``cost`` is not a tensor, ``gc.ShapeError``
    (a ``ValueError``) if it is not a scalar, and ``ValueError`` naming a placeholder the feed
    lacks."""
    if not isinstance(cost, Tensor):
        raise TypeError(f"explain: cost must be a graphc tensor, got {type(cost).__name__}")
    if cost.shape != ():
        raise ShapeError(f"explain: cost must be a scalar, got shape {format_shape(cost.shape)} "
                         f"({cost.name}); reduce it with gc.sum or gc.mean first")
    if not isinstance(feed, dict):
        raise TypeError(f"explain: feed must be a dict from placeholders to arrays, got "
                        f"{type(feed).__name__}")
    order = toposort([cost])
    placeholders = [n for n in order if n.op == "placeholder"]
    feed = _resolve_feed(feed, placeholders)
    nodes = [n for n in order if n.op != "constant" or n is cost]
    table = backprop(cost, [n for n in nodes if is_float(n.dtype)])
    grads = [table.get(n.id) for n in nodes]
    with_grad = [g for g in grads if g is not None]
    # run the graph as built, through the interpreter, with no updates: explaining a cost must
    # not advance dropout counters or batch-norm running statistics (gc.compile would)
    exe = NumpyExecutable(Program(placeholders, nodes + with_grad, []))
    values = exe.run([check_feed(p, feed[p]) for p in placeholders])
    fwd, bwd = values[:len(nodes)], iter(values[len(nodes):])
    rows = []
    for n, v, g in zip(nodes, fwd, grads):
        label = n.attrs.get("label", n.op)
        args = ", ".join(i.name for i in n.inputs)
        rows.append({"node": n.name, "op": f"{label}({args})" if args else label,
                     "value": np.asarray(v), "grad": None if g is None else np.asarray(next(bwd))})
    head = ("node", "op", "value", f"d{cost.name}/d node")
    cells = [(r["node"], r["op"], _show(r["value"]), "-" if r["grad"] is None else _show(r["grad"]))
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = lambda c: "  ".join(s.ljust(w) for s, w in zip(c, widths)).rstrip()  # noqa: E731
    text = "\n".join([line(head), line(["-" * w for w in widths])] + [line(c) for c in cells])
    out = Explanation(text)
    out.rows = rows
    if show:
        print(text)
    return out
