"""Seeded random-graph generator for differential testing of the compiled backends.

``build_case(seed)`` returns a random small training-style graph built only from the public
API (elementwise chains with broadcasting, reductions of expressions that are also read
elsewhere, dense layers whose pre-activation is an output too, transposes/reshapes, several
outputs sharing nodes, gradients of a random scalar cost, and an updates list: an optimizer
from ``gc.optim`` or hand-written updates such as swaps, updates reading other updated
parameters, updates whose new value is an output too, scalar parameters).

``run_case(case, backend)`` runs it ``case.calls`` times from the same starting parameter
values and returns the outputs of every call and the parameter values after the last one, so
that two backends can be compared with ``compare``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import graphc as gc
from graphc.ir import toposort

SIZES = (1, 3, 17, 33)
UNARY = {
    "tanh": gc.tanh, "sigmoid": gc.sigmoid, "relu": gc.relu, "softplus": gc.softplus,
    "silu": gc.silu, "gelu": gc.gelu, "gelu_tanh": lambda t: gc.gelu(t, approximate="tanh"),
    "elu": gc.elu, "selu": gc.selu, "leaky_relu": lambda t: gc.leaky_relu(t, 0.1),
    "mish": gc.mish, "softsign": gc.softsign, "hard_tanh": gc.hard_tanh, "sin": gc.sin,
    "cos": gc.cos, "square": gc.square, "abs": gc.abs, "neg": gc.neg,
    "exp_t": lambda t: gc.exp(gc.tanh(t)), "log_s": lambda t: gc.log(gc.abs(t) + 1.0),
    "sqrt_s": lambda t: gc.sqrt(gc.abs(t) + 0.5), "expm1_t": lambda t: gc.expm1(gc.tanh(t)),
    "log1p_s": lambda t: gc.log1p(gc.square(t)), "scale": lambda t: t * 0.5 - 0.25,
    "pow2": lambda t: gc.pow(gc.tanh(t), 2.0),
}
ACTS = ["relu", "tanh", "sigmoid", "gelu", "silu", "softplus", "elu", "leaky_relu", None]


@dataclass
class Case:
    seed: int
    inputs: list
    feeds: list            # one list of arrays per call
    outputs: list
    updates: list
    params: list
    calls: int
    desc: list = field(default_factory=list)


class _Gen:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.desc = []
        self.nparam = 0

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def param(self, shape, scale=0.5):
        self.nparam += 1
        v = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return gc.parameter(v, name=f"p{self.nparam}")


def _shape_key(t):
    return tuple(t.shape)


def build_case(seed: int, calls: int = 3) -> Case:
    g = _Gen(seed)
    rng = g.rng
    B = g.choice((1, 3, 17, 33))
    free = bool(rng.integers(2))
    K = g.choice((1, 3, 17, 33))
    N = g.choice((1, 3, 17, 130)) if rng.random() < 0.2 else g.choice((1, 3, 17))
    T = g.choice((1, 3, 5)) if rng.random() < 0.3 else None   # rank-3 input: x(b, t, K) @ W
    x = gc.placeholder((None if free else B, K) if T is None else (None if free else B, T, K),
                       name="x")
    inputs = [x]
    g.desc.append(f"B={B} free={free} T={T} K={K} N={N}")
    W = g.param((K, N))
    b = g.param((N,))
    pool = [x]          # tensors of rank 2 (batch, something) or other shapes
    extra_params = [W, b]

    def pick(pred=lambda t: True):
        cands = [t for t in pool if pred(t)]
        if not cands:
            return None
        if rng.random() < 0.6:
            return cands[-1]          # mostly extend the newest tensor: deeper chains
        return g.choice(cands)

    nsteps = int(rng.integers(4, 12))
    for _ in range(nsteps):
        kind = g.choice(["unary", "unary", "binary", "dense", "dense", "reduce", "softmax",
                         "transpose", "reshape", "bcast", "maxout", "bmm", "where", "bmm3", "bmm3"])
        t = pick()
        if kind == "unary":
            name = g.choice(list(UNARY))
            pool.append(UNARY[name](t)); g.desc.append(f"unary {name}")
        elif kind == "binary":
            u = pick(lambda s: _shape_key(s) == _shape_key(t))
            op = g.choice(["add", "sub", "mul", "div", "maximum", "minimum"])
            if op == "div":
                pool.append(t / (gc.abs(u) + 1.0))
            else:
                pool.append(getattr(gc, op)(t, u))
            g.desc.append(f"binary {op}")
        elif kind == "bcast":
            if len(t.shape) == 0:
                continue
            last = t.shape[-1]
            if last is None:
                continue
            shp = g.choice([(last,), (), (1, last)])
            p = g.param(shp) if rng.random() < 0.6 else gc.constant(
                rng.standard_normal(shp).astype(np.float32))
            extra_params.append(p) if p.op == "parameter" else None
            op = g.choice(["add", "mul", "sub"])
            pool.append(getattr(gc, op)(t, p) if rng.random() < 0.5 else getattr(gc, op)(p, t))
            g.desc.append(f"bcast {op} {shp}")
        elif kind == "dense":
            t = pick(lambda s: len(s.shape) in (2, 3) and s.shape[-1] is not None)
            k = t.shape[-1]
            n = g.choice((1, 3, 17, 33))
            Wn = g.param((k, n)); extra_params.append(Wn)
            pre = t @ Wn if rng.random() < 0.8 else gc.matmul(t, gc.transpose(g.param((n, k))))
            if rng.random() < 0.7:
                bn = g.param((n,)); extra_params.append(bn)
                pre = pre + bn if rng.random() < 0.5 else bn + pre
            act = g.choice(ACTS)
            out = UNARY[act](pre) if act else pre
            if rng.random() < 0.4:
                pool.append(pre)      # pre-activation read elsewhere
            pool.append(out); g.desc.append(f"dense {k}->{n} act={act}")
        elif kind == "bmm":
            if len(t.shape) != 2 or t.shape[-1] is None:
                continue
            k = t.shape[-1]
            m = g.choice((1, 3, 5))
            A = g.param((2, m, k)); extra_params.append(A)
            # (2, m, k) @ (k, batch)^T-like: use t.T reshaped
            tt = gc.transpose(t)                         # (k, batch)
            y = gc.matmul(A, tt)                         # (2, m, batch)
            if rng.random() < 0.5:
                y = gc.transpose(y, (0, 2, 1))           # (2, batch, m)
                y = gc.sum(y, axis=0)                    # (batch, m)
            else:
                y = gc.sum(y, axis=0)                    # (m, batch)
                y = gc.transpose(y)                      # (batch, m)
            pool.append(y); g.desc.append(f"bmm m={m}")
        elif kind == "bmm3":
            t = pick(lambda s: len(s.shape) == 3 and None not in s.shape)
            if t is None:
                continue
            bb, m, k = t.shape
            n = g.choice((1, 3, 17))
            ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
            lhs = gc.transpose(t, (0, 2, 1)) if ta else t                 # (b, k, m) or (b, m, k)
            P = g.param((bb, n, m if ta else k) if tb else (bb, m if ta else k, n))
            extra_params.append(P)
            rhs = gc.transpose(P, (0, 2, 1)) if tb else P
            y = gc.matmul(lhs, rhs)                                       # (b, m|k, n)
            eshape = g.choice([(n,), (), tuple(y.shape[1:]), tuple(y.shape), None])
            if eshape is not None:
                e = g.param(eshape); extra_params.append(e)
                y = y + e
            act = g.choice(ACTS)
            pool.append(UNARY[act](y) if act else y)
            g.desc.append(f"bmm3 ta={ta} tb={tb} {tuple(y.shape)} epi={eshape} act={act}")
        elif kind == "reduce":
            if len(t.shape) == 0:
                continue
            ax = g.choice([None, 0, -1, len(t.shape) - 1] + ([(0, 1)] if len(t.shape) >= 2 else []))
            kd = bool(rng.integers(2))
            red = g.choice(["sum", "mean", "max", "logsumexp"])
            r = getattr(gc, red)(t, axis=ax, keepdims=kd)
            g.desc.append(f"reduce {red} axis={ax} keepdims={kd}")
            pool.append(r)
            if kd and rng.random() < 0.5:
                pool.append(t - r); g.desc.append("  minus reduced")
        elif kind == "softmax":
            if len(t.shape) == 0:
                continue
            f = g.choice(["softmax", "log_softmax"])
            ax = g.choice([-1, -1, 0])
            pool.append(getattr(gc, f)(t, axis=ax)); g.desc.append(f"{f} axis={ax}")
        elif kind == "transpose":
            if len(t.shape) != 2:
                continue
            pool.append(gc.transpose(t)); g.desc.append("transpose")
        elif kind == "reshape":
            if len(t.shape) != 2 or None in t.shape:
                continue
            a, c = t.shape
            shp = g.choice([(a * c,), (c, a), (a, c, 1), (1, a * c), (1, a, c), (a, 1, c)])
            pool.append(gc.reshape(t, shp)); g.desc.append(f"reshape {shp}")
        elif kind == "maxout":
            if len(t.shape) != 2 or t.shape[-1] is None:
                continue
            k = t.shape[-1]
            pieces = g.choice((2, 3))
            Wm = g.param((k, 2 * pieces)); extra_params.append(Wm)
            pool.append(gc.maxout(t @ Wm, pieces)); g.desc.append(f"maxout {pieces}")
        elif kind == "where":
            u = pick(lambda s: _shape_key(s) == _shape_key(t))
            # not greater(t, u): u may be gelu(t), within rounding of t where t is large (a
            # near-tie decided differently by float32 roundings is no bug)
            pool.append(gc.where(gc.greater(t - u, 0.25), t * 2.0, u)); g.desc.append("where")

    # cost: scalar from a few pool tensors
    float_pool = [t for t in pool[1:]] or [x]
    nterms = int(rng.integers(1, 4))
    terms = []
    for i in range(nterms):
        t = float_pool[-1] if i == 0 else g.choice(float_pool)
        kind = g.choice(["sum", "mean", "sumsq", "ce", "mse", "lse"])
        if kind == "ce" and len(t.shape) == 2 and t.shape[-1] is not None and t.shape[-1] > 1:
            labels = gc.placeholder((t.shape[0],), dtype="int64", name=f"lab{len(inputs)}")
            inputs.append(labels)
            red = g.choice(["mean", "sum"])
            terms.append(gc.cross_entropy(t, labels, reduction=red)); g.desc.append(f"cost ce {red}")
        elif kind == "mse":
            terms.append(gc.mse(t, gc.constant(np.zeros((), np.float32)))); g.desc.append("cost mse")
        elif kind == "lse" and len(t.shape) >= 1:
            terms.append(gc.sum(gc.logsumexp(t, axis=-1))); g.desc.append("cost sum lse")
        elif kind == "sumsq":
            terms.append(gc.sum(gc.square(t)) * 0.1); g.desc.append("cost sumsq")
        else:
            terms.append(getattr(gc, "mean" if kind == "mean" else "sum")(t)); g.desc.append(f"cost {kind}")
    cost = terms[0]
    for t in terms[1:]:
        cost = cost + t

    # trainable parameters the cost depends on
    in_graph = {id(n) for n in toposort([cost])}
    params = [p for p in extra_params if id(p) in in_graph]
    # scalar parameter sometimes
    if rng.random() < 0.3:
        s = g.param(())
        cost = cost * gc.sigmoid(s) if rng.random() < 0.5 else cost + s * s
        params.append(s); g.desc.append("scalar param")
    # scalar parameters (float32 and float64) mixed in by scalar-only expressions: the scalar
    # nodes of their gradients and hand-written updates are grouped into one kernel per dtype
    scalars = []
    if rng.random() < 0.5:
        for j in range(int(rng.integers(1, 4))):
            dt = np.float64 if rng.random() < 0.3 else np.float32
            g.nparam += 1
            sp = gc.parameter(np.asarray(rng.standard_normal() * 0.5, dt), name=f"s{g.nparam}")
            scalars.append(sp)
            term = g.choice([gc.square(sp), gc.tanh(sp) * sp, gc.exp(gc.tanh(sp)), sp * 0.3])
            if sp.dtype == "float64":
                term = gc.cast(term, "float32")
            cost = cost * (1.0 + 0.1 * gc.tanh(term)) if rng.random() < 0.4 else cost + term
        g.desc.append(f"scalar params {[p.dtype for p in scalars]}")
        params += scalars
    grads = gc.grad(cost, params) if params else []

    outputs = [cost]
    for t in pool[1:]:
        if rng.random() < 0.35:
            outputs.append(t)
    for gr in grads:
        if rng.random() < 0.3:
            outputs.append(gr)

    updates = []
    if params:
        mode = g.choice(["sgd", "momentum", "nesterov", "adam", "rmsprop", "hand", "hand"])
        g.desc.append(f"updates {mode}")
        if mode == "sgd":
            updates = gc.optim.SGD(lr=0.05).updates(params, grads)
        elif mode == "momentum":
            updates = gc.optim.SGD(lr=0.05, momentum=0.9).updates(params, grads)
        elif mode == "nesterov":
            updates = gc.optim.SGD(lr=0.05, momentum=0.9, nesterov=True).updates(params, grads)
        elif mode == "adam":
            updates = gc.optim.Adam(lr=0.01, eps=1e-3).updates(params, grads)
        elif mode == "rmsprop":
            updates = gc.optim.RMSProp(lr=0.01, eps=1e-3).updates(params, grads)
        else:
            used = set()
            for p, gr in zip(params, grads):
                r = rng.random()
                same = [q for q in params if q is not p and q.shape == p.shape
                        and q.dtype == p.dtype and id(q) not in used]
                if r < 0.25 and same and id(p) not in used:
                    q = same[0]
                    updates += [(p, q), (q, p)]; used |= {id(p), id(q)}
                    g.desc.append("  swap")
                elif id(p) in used:
                    continue
                elif r < 0.45 and same:
                    q = same[0]
                    updates.append((p, p - 0.1 * gr + 0.01 * q)); used.add(id(p))
                    g.desc.append("  reads other param")
                elif r < 0.52 and same:
                    q = same[0]
                    mid = p * 0.5 + q * 0.25          # an intermediate read by two updates
                    updates.append((p, mid - 0.05 * gr)); used.add(id(p))
                    if id(q) not in used:
                        updates.append((q, q - mid * 0.1)); used.add(id(q))
                    if rng.random() < 0.5:
                        outputs.append(mid)
                    g.desc.append("  shared intermediate")
                elif r < 0.6:
                    newv = p * 0.9 - 0.05 * gr
                    updates.append((p, newv)); used.add(id(p))
                    outputs.append(newv); g.desc.append("  update is output")
                elif r < 0.68:
                    updates.append((p, gr)); used.add(id(p))        # the gradient itself
                    g.desc.append("  p <- grad")
                elif r < 0.76:
                    newv = p - 0.05 * gr
                    updates.append((p, newv - gc.mean(newv, keepdims=True) * 0.1
                                    if len(p.shape) else newv)); used.add(id(p))
                    g.desc.append("  recentered")
                else:
                    updates.append((p, p - 0.05 * gr)); used.add(id(p))
                if rng.random() < 0.2:
                    outputs.append(p)                                # the old value is returned
                    g.desc.append("  param is output")

    # feeds
    feeds = []
    for c in range(calls):
        row = []
        for ph in inputs:
            shp = tuple(B if d is None else d for d in ph.shape)
            if ph.dtype == "int64":
                row.append(rng.integers(0, 1 << 30, size=shp) % 1)  # placeholder, fixed below
            else:
                row.append(rng.standard_normal(shp).astype(np.float32))
        feeds.append(row)
    # labels need the class count of their logits; find it from the cross_entropy consumers
    for ph_i, ph in enumerate(inputs):
        if ph.dtype != "int64":
            continue
        ncls = _classes_for(ph, outputs + [u for _, u in updates])
        for row in feeds:
            row[ph_i] = rng.integers(0, ncls, size=row[ph_i].shape).astype(np.int64)

    all_params = [n for n in toposort(outputs + [u for _, u in updates] + [p for p, _ in updates])
                  if n.op == "parameter"]
    return Case(seed, inputs, feeds, outputs, updates, all_params, calls, g.desc)


def _classes_for(label_ph, roots):
    for n in toposort(roots):
        ins = getattr(n, "inputs", ())
        if any(i is label_ph for i in ins):
            logits = ins[0]
            return int(logits.shape[-1])
    return 1


def run_case(case: Case, backend: str):
    start = [p.value for p in case.params]
    try:
        f = gc.compile(case.inputs, case.outputs, updates=case.updates or None, backend=backend)
        outs = []
        for row in case.feeds:
            outs.append([np.array(o, copy=True) for o in f(*row)])
        final = [p.value for p in case.params]
    finally:
        for p, v in zip(case.params, start):
            p.value = v
    return outs, final


def compare(case: Case, ref, got, rtol=1e-4, atol=1e-4):
    problems = []
    (ro, rp), (go, gp) = ref, got
    for c, (a_row, b_row) in enumerate(zip(ro, go)):
        for i, (a, b) in enumerate(zip(a_row, b_row)):
            if a.shape != b.shape:
                problems.append(f"call {c} output {i}: shape {a.shape} vs {b.shape}")
            elif not np.allclose(a, b, rtol=rtol, atol=atol * _scale(a), equal_nan=True):
                problems.append(f"call {c} output {i}: max abs diff {np.abs(a - b).max()}")
    for i, (a, b) in enumerate(zip(rp, gp)):
        if not np.allclose(a, b, rtol=rtol, atol=atol * _scale(a), equal_nan=True):
            problems.append(f"param {case.params[i].name} {a.shape}: max abs diff {np.abs(a - b).max()}")
    return problems


def _scale(a):
    fin = np.abs(a[np.isfinite(a)])
    return max(1.0, float(fin.max(initial=0)))


def diverged(ref):
    """The reference overflowed or grew past 1e4 (a random graph can blow up; sin of such a
    value or an update step from it is ill-conditioned in float32): not comparable."""
    outs, final = ref
    arrays = [a for row in outs for a in row] + list(final)
    return not all(np.isfinite(a).all() and np.abs(a).max(initial=0) < 1e4 for a in arrays
                   if a.dtype.kind == "f")
