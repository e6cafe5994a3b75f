"""``gc.check_grad``: symbolic gradients against central finite differences in float64."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .autodiff import grad
from .ir import Tensor, is_float
from .ops.core import constant, placeholder
from .rewrite import order_with_effects, rewrite


def _retype_attrs(node: Tensor) -> Tensor:
    """Rule: float32 dtype attributes (ew, size_of, ...) become float64."""
    dt = node.attrs.get("dtype")
    if dt is not None and is_float(dt) and dt != "float64" and node.dtype != "float64":
        from .ops.registry import make
        attrs = dict(node.attrs, dtype="float64")
        return make(node.op, list(node.inputs), name=node._name, **attrs)
    return None


def as_float64(roots: Sequence[Tensor], feeds: dict) -> tuple[list[Tensor], dict, dict]:
    """A float64 copy of the graph: every placeholder and parameter becomes a float64
    placeholder (fed with its value), constants become float64 constants.  Returns the new roots,
    the map old id -> new leaf, and the float64 feeds keyed by new placeholder."""
    leaf_map, new_feeds = {}, {}
    by_name = {k: v for k, v in feeds.items() if isinstance(k, str)}  # as gc.explain's feed
    # leaves reached only through effects (batch norm's running statistics in training) become
    # placeholders too, so the copy updates no parameter of the original graph
    for n in order_with_effects(list(roots)):
        if not n.is_leaf:
            continue
        if n.op == "placeholder" or n.op == "parameter":
            if n.op == "placeholder" and n not in feeds and n.name not in by_name:
                raise ValueError(f"check_grad: no value fed for placeholder {n.name!r}")
            value = np.asarray((feeds[n] if n in feeds else by_name[n.name])
                               if n.op == "placeholder" else n.attrs["store"].array)
            dtype = "float64" if is_float(n.dtype) else n.dtype
            p = placeholder(value.shape, dtype, name=n.name)
            leaf_map[n.id] = p
            new_feeds[p] = value.astype(dtype)
        elif n.op == "constant" and is_float(n.dtype):
            leaf_map[n.id] = constant(n.attrs["value"], dtype="float64")
    m = rewrite(roots, [_retype_attrs], leaf_map=leaf_map)
    return [m[r.id] for r in roots], leaf_map, new_feeds


def check_grad(cost: Tensor, wrt, feed: dict, eps: float = 1e-3, rtol: float = 1e-2,
               atol: float = 1e-4) -> None:
    """Compare ``gc.grad(cost, wrt)`` with central finite differences, in float64.

    ``wrt`` is a tensor or a list (placeholders or parameters); ``feed`` maps placeholders to
    arrays (keys may also be placeholder names, as in ``gc.explain``).  Raises AssertionError
    naming the worst entry when they differ."""
    from .compile import compile as gc_compile

    targets = [wrt] if isinstance(wrt, Tensor) else list(wrt)
    (cost64,), leaf_map, feeds64 = as_float64([cost], feed)
    # a target the cost does not reach has gradient zero by construction: nothing to compare
    live = [t for t in targets if t.id in leaf_map]
    grads = grad(cost64, [leaf_map[t.id] for t in live]) if live else []
    inputs = list(feeds64)
    f_cost = gc_compile(inputs, cost64)
    f_grad = gc_compile(inputs, grads) if grads else None
    base = [feeds64[p] for p in inputs]
    symbolic = f_grad(*base) if f_grad else []
    worst = None
    for t, g_sym in zip(live, symbolic):
        p = leaf_map[t.id]
        k = inputs.index(p)
        x = base[k]
        numeric = np.zeros_like(x, dtype=np.float64)
        flat = x.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = float(f_cost(*base))
            flat[i] = old - eps
            minus = float(f_cost(*base))
            flat[i] = old
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        g_sym = np.broadcast_to(np.asarray(g_sym, dtype=np.float64), x.shape)
        err = np.abs(g_sym - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and (not np.all(np.isfinite(g_sym)) or err.max() > 0):
            i = int(np.nanargmax(np.where(np.isfinite(err), err, np.inf)))
            idx = np.unravel_index(i, x.shape) if x.shape else ()
            msg = (f"check_grad: gradient of {cost.name} with respect to {t.name} differs at "
                   f"index {tuple(int(j) for j in idx)}: symbolic {g_sym.reshape(-1)[i]:.6g}, "
                   f"finite difference {numeric.reshape(-1)[i]:.6g} (rtol={rtol}, atol={atol})")
            # keep the worst entry over all of wrt (not the first failing tensor's)
            score = float(err.reshape(-1)[i])
            score = score if np.isfinite(score) else np.inf  # a NaN/inf gradient is worst
            if worst is None or score > worst[0]:
                worst = (score, msg)
    if worst:
        raise AssertionError(worst[1])
