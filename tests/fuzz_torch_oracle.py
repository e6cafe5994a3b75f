"""Seeded random graphs checked against an independent oracle: PyTorch autograd.

tests/fuzz_graphs.py compares the compiled backends with graphc's own numpy backend, so a wrong
gradient rule (graphc/autodiff.py, an op's rule in graphc/ops/) is shared by every backend and
goes unseen there.  Here every random graph is built twice at once, with graphc's public API
and with the PyTorch functions of the same meaning (``OPS``: one entry per op, written once),
and graphc's forward values, ``gc.grad`` of a scalar cost with respect to every input and
parameter (and, in the first order, some intermediate tensors), and Hessian-vector products
(``gc.grad`` of sum(grad * v)) are compared with torch's forward, ``torch.autograd.grad`` and
its double backward (``create_graph=True``).  Each case draws the highest order it compares:
1, 2 (Hessian-vector products) or 3 (the cost may hold a gradient penalty, so the
Hessian-vector products are third derivatives).

The graphs use elementwise math and activations, broadcasting arithmetic (named ops, Python
operators, float and int literals, constant tensors), matmuls (2-D, 1-D operands, batched with
transposed operands, batch axes broadcast on both sides), reductions with axis/keepdims
variants, softmax/log_softmax over any axis, reshape/transpose, prelu, maxout over any axis,
batch_norm and dropout (rate 0 or not training; Python bool or boolean placeholder flags),
and costs mixing weighted sums, mse, (binary) cross-entropies, penalties, logsumexp and max.
Placeholders sometimes have a free batch dimension.

``build_case(seed, dtype)`` returns a ``Case``: placeholders and feeds, the graphc outputs and
torch's values for them.  ``run_case(case, backend)`` compiles and runs it; ``compare`` lists the
discrepancies.  In float64 the tolerance is tight (rtol 1e-7); in float32 (``compare32``) an
entry may also differ by a few times the distance between torch's float32 and float64 values
(the conditioning of that entry).

Values stay in well-conditioned ranges: inputs N(0, 1), weights scaled by 1/sqrt(fan-in),
logarithms, square roots and powers of bases kept away from 0, divisors away from 0, where's
condition away from a tie, and no exact kinks reached by chance (exact zeros such as relu's
output do reach kinks and ties: there graphc's conventions are PyTorch's, checked with them).
Where torch's own derivative is not exact the oracle uses torch's composite form instead (see
``_t_batch_norm`` and ``_t_bce_composite``).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

import graphc as gc
from graphc.ir import toposort

TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}


# -- the mapping from graphc ops to torch functions (written once) ----------------------------

def _dims(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _t_reduce(fn):
    def red(t, axis=None, keepdims=False):
        return fn(t, dim=_dims(axis, t.ndim), keepdim=keepdims)
    return red


def _t_mean(t, dim, keepdim):
    return torch.mean(t, dim=dim, keepdim=keepdim) if dim else t.clone()


def _t_transpose(t, axes=None):
    return t.permute(tuple(reversed(range(t.ndim))) if axes is None else tuple(axes))


def _t_prelu(t, alpha):
    return F.prelu(t, alpha.reshape(1) if alpha.ndim == 0 else alpha)


def _t_bce_composite(p, y, reduction):
    per = -(y * torch.clamp(torch.log(p), min=-100) + (1 - y) * torch.clamp(torch.log1p(-p),
                                                                             min=-100))
    return per.mean() if reduction == "mean" else per.sum()


def _t_maxout(t, pieces, axis=-1):
    ax = axis % t.ndim
    return t.unflatten(ax, (t.shape[ax] // pieces, pieces)).amax(ax + 1)


def _t_batch_norm(t, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5,
                  composite=False):
    """API.md: normalizes over axis 0.  For (N, C) that is torch's batch_norm (which updates
    the running statistics in place); for more axes torch's normalizes over all but axis 1,
    so the axis-0 form is written out (with torch's update rule: the variance unbiased).
    ``composite``: the written-out form for (N, C) too: torch 2.13's third derivative of
    F.batch_norm in training (the backward of its double backward) is wrong (finite
    differences of its own second derivative agree with graphc and with the composite form,
    see test_batch_norm_third_order_matches_finite_differences)."""
    if t.ndim == 2 and not composite:
        return F.batch_norm(t, running_mean, running_var, gamma, beta, training, momentum, eps)
    if training:
        mu = t.mean(0)
        var = ((t - mu) ** 2).mean(0)
        n = t.shape[0]
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mu)
            running_var.mul_(1 - momentum).add_(momentum * var * n / max(n - 1, 1))
    else:
        mu, var = running_mean, running_var
    return gamma * (t - mu) / torch.sqrt(var + eps) + beta


OPS = {
    # Python operators on symbolic tensors (API.md: + - * / ** @, unary -, t.T)
    "+": (operator.add, operator.add), "-": (operator.sub, operator.sub),
    "*": (operator.mul, operator.mul), "/": (operator.truediv, operator.truediv),
    "**": (operator.pow, operator.pow), "@": (operator.matmul, operator.matmul),
    "unary -": (operator.neg, operator.neg), ".T": (lambda t: t.T, _t_transpose),
    # arithmetic and math
    "add": (gc.add, torch.add), "sub": (gc.sub, torch.sub), "mul": (gc.mul, torch.mul),
    "div": (gc.div, torch.div), "pow": (gc.pow, torch.pow), "neg": (gc.neg, torch.neg),
    "matmul": (gc.matmul, torch.matmul),
    "maximum": (gc.maximum, torch.maximum), "minimum": (gc.minimum, torch.minimum),
    "where": (gc.where, torch.where), "greater": (gc.greater, torch.gt),
    "less": (gc.less, torch.lt),
    "exp": (gc.exp, torch.exp), "log": (gc.log, torch.log), "sqrt": (gc.sqrt, torch.sqrt),
    "abs": (gc.abs, torch.abs), "cos": (gc.cos, torch.cos), "sin": (gc.sin, torch.sin),
    "square": (gc.square, torch.square), "expm1": (gc.expm1, torch.expm1),
    "log1p": (gc.log1p, torch.log1p),
    # activations
    "sigmoid": (gc.sigmoid, torch.sigmoid), "tanh": (gc.tanh, torch.tanh),
    "relu": (gc.relu, torch.relu),
    "leaky_relu": (gc.leaky_relu, lambda t, alpha=0.01: F.leaky_relu(t, alpha)),
    "elu": (gc.elu, lambda t, alpha=1.0: F.elu(t, alpha)), "selu": (gc.selu, F.selu),
    "softplus": (gc.softplus, F.softplus), "hard_tanh": (gc.hard_tanh, F.hardtanh),
    "softsign": (gc.softsign, F.softsign), "silu": (gc.silu, F.silu),
    "swish": (gc.swish, F.silu), "mish": (gc.mish, F.mish),
    "gelu": (gc.gelu, lambda t, approximate="none": F.gelu(t, approximate=approximate)),
    "step": (gc.step, lambda t: (t > 0).to(t.dtype)),
    "prelu": (gc.prelu, _t_prelu), "maxout": (gc.maxout, _t_maxout),
    "softmax": (gc.softmax, lambda t, axis=-1: torch.softmax(t, axis)),
    "log_softmax": (gc.log_softmax, lambda t, axis=-1: torch.log_softmax(t, axis)),
    # reductions and layout
    "sum": (gc.sum, _t_reduce(torch.sum)), "mean": (gc.mean, _t_reduce(_t_mean)),
    "max": (gc.max, _t_reduce(torch.amax)),
    "logsumexp": (gc.logsumexp, _t_reduce(torch.logsumexp)),
    "transpose": (gc.transpose, _t_transpose),
    "reshape": (gc.reshape, lambda t, shape: t.reshape(shape)),
    # losses and layers
    "mse": (gc.mse, lambda p, y, reduction="mean": F.mse_loss(p, y, reduction=reduction)),
    "binary_cross_entropy": (gc.binary_cross_entropy, lambda p, y, reduction="mean":
                             F.binary_cross_entropy(p, y, reduction=reduction)),
    "binary_cross_entropy_with_logits": (
        gc.binary_cross_entropy_with_logits, lambda x, y, reduction="mean":
        F.binary_cross_entropy_with_logits(x, y, reduction=reduction)),
    "cross_entropy": (gc.cross_entropy, lambda x, y, reduction="mean":
                      F.cross_entropy(x, y, reduction=reduction)),
    "l1_penalty": (gc.l1_penalty, lambda ts: sum(t.abs().sum() for t in ts)),
    "l2_penalty": (gc.l2_penalty, lambda ts: sum(t.square().sum() for t in ts)),
    "dropout": (gc.dropout, lambda t, rate, training: F.dropout(t, rate, training)),
    "batch_norm": (gc.batch_norm, _t_batch_norm),
}

# unary ops applied anywhere: name -> (op, kwargs); those with a restricted domain are applied
# to a transformed argument by ``_Gen.unary``
UNARY = {
    "sigmoid": {}, "tanh": {}, "relu": {}, "leaky_relu": {"alpha": 0.1}, "elu": {},
    "elu_half": {"alpha": 0.5}, "selu": {}, "softplus": {}, "hard_tanh": {}, "softsign": {},
    "silu": {}, "swish": {}, "mish": {}, "gelu": {}, "gelu_tanh": {"approximate": "tanh"},
    "sin": {}, "cos": {}, "square": {}, "abs": {}, "neg": {}, "exp": {}, "expm1": {},
    "step": {}, "log": {}, "sqrt": {}, "log1p": {},
}
_OP_OF = {"elu_half": "elu", "gelu_tanh": "gelu"}


@dataclass
class Node:
    """One tensor of the random graph, built both ways."""
    g: gc.Tensor        # graphc (symbolic)
    t: torch.Tensor     # torch (eager)

    @property
    def shape(self):
        return tuple(self.t.shape)

    @property
    def ndim(self):
        return self.t.ndim


@dataclass
class Case:
    seed: int
    dtype: str
    inputs: list                 # graphc placeholders
    feeds: list                  # their arrays
    outputs: list                # graphc tensors
    expected: list               # torch's values of the outputs (numpy)
    names: list                  # what each output is
    stats: list = field(default_factory=list)     # (graphc parameter, torch value after)
    params: list = field(default_factory=list)    # all graphc parameters (reset after a run)
    desc: list = field(default_factory=list)
    vs: list = field(default_factory=list)        # the vectors of the Hessian-vector products
    torch_leaves: list = field(default_factory=list)
    torch_cost: object = None


class _Gen:
    def __init__(self, seed, dtype):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.tdtype = TORCH_DTYPE[dtype]
        self.desc = []
        self.wrt = []        # (name, graphc leaf, torch leaf): differentiated
        self.inputs, self.feeds = [], []
        self.params, self.stats = [], []
        self.count = 0

    # -- random choices
    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def coin(self, p=0.5):
        return bool(self.rng.random() < p)

    def normal(self, shape, scale=1.0):
        # drawn in float64 whatever the case's dtype, so float32 and float64 cases of one
        # seed are the same graph with the same (rounded) values
        return self.rng.standard_normal(shape) * scale

    # -- leaves
    def _name(self, kind):
        self.count += 1
        return f"{kind}{self.count}"

    def placeholder(self, value, free=False):
        name = self._name("x")
        shape = (None,) + value.shape[1:] if free else value.shape
        ph = gc.placeholder(shape, dtype=self.dtype, name=name)
        arr = value.astype(self.dtype)
        tt = torch.tensor(arr, dtype=self.tdtype, requires_grad=True)
        self.inputs.append(ph)
        self.feeds.append(arr)
        self.wrt.append((name, ph, tt))
        return Node(ph, tt)

    def labels(self, shape, classes):
        name = self._name("y")
        ph = gc.placeholder(shape, dtype="int64", name=name)
        arr = self.rng.integers(0, classes, size=shape).astype(np.int64)
        self.inputs.append(ph)
        self.feeds.append(arr)
        return Node(ph, torch.tensor(arr))

    def flag(self, value: bool):
        """A ``training`` argument: a Python bool or a boolean scalar placeholder fed it;
        returns (graphc's, torch's)."""
        if self.coin():
            return value, value
        ph = gc.placeholder((), dtype="bool", name=self._name("training"))
        self.inputs.append(ph)
        self.feeds.append(np.array(value))
        return ph, value

    def param(self, shape, scale=1.0, trainable=True):
        name = self._name("p")
        arr = self.normal(shape, scale).astype(self.dtype)
        p = gc.parameter(arr, name=name, trainable=trainable)
        tt = torch.tensor(arr, dtype=self.tdtype, requires_grad=trainable)
        self.params.append(p)
        if trainable:
            self.wrt.append((name, p, tt))
        return Node(p, tt)

    def const(self, value):
        arr = np.asarray(value).astype(self.dtype)
        return Node(gc.constant(arr), torch.tensor(arr, dtype=self.tdtype))

    def scalar(self, v):
        """A Python scalar operand (a literal of graphc's expression) or, sometimes, a
        constant tensor of the case's dtype."""
        return self.const(np.asarray(v)) if self.coin(0.2) else float(v)

    # -- applying an op to both
    def op(self, name, *args, **kw):
        gfn, tfn = OPS[name]

        def side(a, torch_side):
            if isinstance(a, Node):
                return a.t if torch_side else a.g
            if isinstance(a, (list, tuple)):
                return [side(x, torch_side) for x in a]
            if torch_side and isinstance(a, float):
                return torch.tensor(a, dtype=self.tdtype)
            return a

        g = gfn(*[side(a, False) for a in args], **kw)
        t = tfn(*[side(a, True) for a in args], **kw)
        return Node(g, t)

    # -- composite pieces
    def positive(self, n, low=0.5):
        """n squared plus ``low``: a smooth positive argument (log, sqrt, pow, div)."""
        return self.op("add", self.op("square", n), low)

    def unary(self, n, name):
        kw = UNARY[name]
        op = _OP_OF.get(name, name)
        if op == "log":
            return self.op("log", self.positive(n))
        if op == "sqrt":
            return self.op("sqrt", self.positive(n, 0.25))
        if op == "log1p":
            return self.op("log1p", self.op("square", n))
        if op in ("exp", "expm1"):
            return self.op(op, self.op("tanh", n) if self.coin() else self.op("mul", n, 0.5))
        if op == "neg" and self.coin():
            return self.op("unary -", n)
        return self.op(op, n, **kw)


def _broadcast_shapes(shape, rng_choice):
    """Shapes that broadcast against ``shape`` (an operand on either side)."""
    nd = len(shape)
    cands = [(), shape, shape[-1:] if nd else ()]
    if nd >= 1:
        cands.append((1,) + shape[1:] if nd >= 2 else (1,))
    if nd >= 2:
        cands.append(shape[:-1] + (1,))
        cands.append((1,) * (nd - 1) + shape[-1:])
    # shapes that also broadcast ``shape`` (the result is larger): a new leading axis, an
    # axis of size 1 stretched
    if nd <= 3:
        cands.append((2,) + shape)
    ones = [i for i, d in enumerate(shape) if d == 1]
    if ones:
        cands.append(tuple(3 if i in ones else 1 for i in range(nd)))
    return rng_choice(cands)


def build_case(seed: int, dtype: str = "float64", order=None) -> Case:
    """The random case of ``seed``; ``order``: the highest derivative order compared (1:
    gradients, 2: Hessian-vector products too, 3: the cost may read a gradient, Hessian-vector
    products then are third derivatives); drawn when None."""
    g = _Gen(seed, dtype)
    rng = g.rng
    B = g.choice((2, 3, 5, 8))
    K = g.choice((1, 2, 3, 4, 6))
    T = g.choice((2, 3)) if g.coin(0.3) else None
    free = g.coin(0.3)
    x = g.placeholder(g.normal((B, K) if T is None else (B, T, K)), free=free)
    pool = [x]
    if g.coin(0.3):
        pool.append(g.placeholder(g.normal((B, g.choice((2, 3, 4)))), free=free))
    g.desc.append(f"x {x.shape} free={free}")

    def pick(pred=lambda n: True):
        cands = [n for n in pool if pred(n)]
        if not cands:
            return None
        return cands[-1] if g.coin(0.6) else g.choice(cands)

    g.order = int(g.choice((1, 2, 2, 3))) if order is None else order
    nsteps = int(rng.integers(2, 9))
    for _ in range(nsteps):
        kind = g.choice(["unary", "unary", "unary", "binary", "binary", "scalar", "dense",
                         "dense", "matmul", "reduce", "softmax", "layout", "layer", "where"])
        n = pick()
        d = n.ndim
        if kind == "unary":
            name = g.choice(list(UNARY))
            pool.append(g.unary(n, name)); g.desc.append(f"unary {name}")
        elif kind == "scalar":
            s = float(np.round(g.normal(()) + 0.1, 3)) or 0.5
            form = g.choice(["add", "rsub", "mul", "div", "rdiv", "pow_int", "pow_float",
                             "rpow", "max", "min"])
            i = int(np.round(s * 3)) or 2                  # Python int literals too
            sym = g.coin(0.4)                              # the operator or the named op
            if form == "add":
                r = g.op("+" if sym else "add", n, g.scalar(s) if g.coin() else i)
            elif form == "rsub":
                r = g.op("-" if sym else "sub", g.scalar(s) if g.coin() else i, n)
            elif form == "mul":
                k = g.scalar(s) if g.coin() else i
                r = g.op("*" if sym else "mul", k, n) if g.coin() else g.op("mul", n, k)
            elif form == "div":
                r = g.op("/" if sym else "div", n, g.scalar(s if abs(s) > 0.1 else 2.0)
                         if g.coin() else i)
            elif form == "rdiv":
                r = g.op("/" if sym else "div", g.scalar(s) if g.coin() else i, g.positive(n))
            elif form == "pow_int":
                r = g.op("**" if sym else "pow", n, g.choice([2.0, 3.0, 2, 3]))
            elif form == "pow_float":
                r = g.op("**" if sym else "pow", g.positive(n),
                         g.choice([0.5, -1.5, 2.5, 1.25, -2]))
            elif form == "rpow":
                r = g.op("**" if sym else "pow", g.choice([2.0, 0.5, 3.0, 2]), g.op("tanh", n))
            elif form == "max":
                r = g.op("maximum", n, g.scalar(s)) if g.coin() else g.op("maximum", g.scalar(s), n)
            else:
                r = g.op("minimum", n, g.scalar(s))
            pool.append(r); g.desc.append(f"scalar {form} {s}")
        elif kind == "binary":
            op = g.choice(["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
            same = [m for m in pool if m.shape == n.shape and m.g.shape == n.g.shape and m is not n]
            if same and g.coin(0.6):
                u = g.choice(same); src = "pool"
            else:
                shp = _broadcast_shapes(n.shape, g.choice)
                u = g.param(shp) if g.coin(0.7) else g.const(g.normal(shp)); src = f"{shp}"
            a, b = (n, u) if g.coin() else (u, n)
            sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}.get(op, op)
            fn = sym if g.coin(0.4) else op     # the operator or the named op
            if op == "div":
                r = g.op(fn, a, g.positive(b))
            elif op == "pow":
                r = g.op(fn, g.op("add", g.op("sigmoid", a), 0.5), g.op("tanh", b))
            else:
                r = g.op(fn, a, b)
            pool.append(r); g.desc.append(f"binary {op} with {src}")
        elif kind == "where":
            u = g.param(_broadcast_shapes(n.shape, g.choice))
            c = float(np.round(g.normal(()), 2))
            cond = g.op("greater", n, c + 0.005) if g.coin() else g.op("less", u, c + 0.005)
            r = g.op("where", cond, g.op("mul", n, 2.0), u) if g.coin() else \
                g.op("where", cond, u, g.op("sin", n))
            pool.append(r); g.desc.append("where")
        elif kind == "dense":
            n = pick(lambda m: m.ndim in (2, 3))
            if n is None:
                continue
            k = n.shape[-1]
            units = g.choice((1, 2, 3, 5))
            if g.coin(0.8):
                W = g.param((k, units), 1 / np.sqrt(k))
                pre = g.op("matmul", n, W)
            else:  # W stored transposed, (units, k)
                W = g.param((units, k), 1 / np.sqrt(k))
                pre = g.op("matmul", n, g.op("transpose", W))
            if g.coin(0.7):
                bias = g.param((units,), 0.3)
                pre = g.op("add", pre, bias) if g.coin() else g.op("add", bias, pre)
            act = g.choice(["relu", "tanh", "sigmoid", "gelu", "silu", "softplus", "elu",
                            "leaky_relu", "mish", "selu", None])
            out = g.unary(pre, act) if act else pre
            if g.coin(0.3):
                pool.append(pre)
            pool.append(out); g.desc.append(f"dense {k}->{units} act={act}")
        elif kind == "matmul":
            form = g.choice(["gram", "left", "vec", "vecl", "dot", "batched", "batched_bcast",
                             "rows", "rank4"])
            if form == "gram" and d == 2:
                r = g.op("matmul", g.op("transpose", n), n)              # (k, k)
                r = g.op("mul", r, 1.0 / max(n.shape[0], 1))
            elif form == "left" and d == 2:
                A = g.param((g.choice((1, 2, 3)), n.shape[0]), 1 / np.sqrt(n.shape[0]))
                r = g.op("matmul", A, n)                                 # (m, k)
            elif form == "vec" and d >= 2:
                v = g.param((n.shape[-1],), 1 / np.sqrt(n.shape[-1]))
                r = g.op("matmul", n, v)                                 # (..., rows)
            elif form == "vecl" and d == 2:
                v = g.param((n.shape[0],), 1 / np.sqrt(n.shape[0]))
                r = g.op("matmul", v, n)                                 # (k,)
            elif form in ("batched", "batched_bcast") and d == 3:
                bb, m, k = n.shape
                ta, tb = g.coin(), g.coin()
                lhs = g.op("transpose", n, axes=(0, 2, 1)) if ta else n
                inner = m if ta else k
                units = g.choice((1, 2, 3))
                lead = (bb,) if form == "batched" else g.choice([(1,), ()])
                P = g.param(lead + ((units, inner) if tb else (inner, units)), 1 / np.sqrt(inner))
                nl = len(lead)
                rhs = g.op("transpose", P, axes=tuple(range(nl)) + (nl + 1, nl)) if tb else P
                r = g.op("matmul", lhs, rhs)
                if g.coin():  # the other way round: param @ batch
                    Q = g.param(lead + (2, r.shape[-2]), 0.5)
                    r = g.op("matmul", Q, r)
                form += f" ta={ta} tb={tb} lead={lead}"
            elif form == "dot" and d == 1:
                v = g.param(n.shape, 1 / np.sqrt(n.shape[0]))
                r = g.op("matmul", n, v) if g.coin() else g.op("@", v, n)   # 0-d
            elif form == "rank4" and d in (2, 3):
                # batch axes broadcast on both sides: (bb, m, k) @ (2, 1, k, u) -> (2, bb, m, u)
                # and (m, k) @ (2, 3, k, u); or the 4-D operand on the left
                m, k = n.shape[-2:]
                lead = (2, 1) if d == 3 else (2, 3)
                if g.coin():
                    P = g.param(lead + (k, g.choice((1, 2))), 1 / np.sqrt(k))
                    r = g.op("matmul", n, P)
                else:
                    Q = g.param(lead + (g.choice((1, 2)), m), 1 / np.sqrt(m))
                    r = g.op("matmul", Q, n)
            elif form == "rows" and d == 3:
                W = g.param((n.shape[-1], g.choice((1, 2, 4))), 1 / np.sqrt(n.shape[-1]))
                r = g.op("matmul", n, W)
            else:
                continue
            pool.append(r); g.desc.append(f"matmul {form} -> {r.shape}")
        elif kind == "reduce":
            if d == 0:
                continue
            axes = [None, 0, -1, int(rng.integers(d))]
            if d >= 2:
                axes += [(0, d - 1), (-1, 0)]
            ax = g.choice(axes)
            kd = g.coin()
            red = g.choice(["sum", "mean", "max", "logsumexp"])
            r = g.op(red, n, axis=ax, keepdims=kd)
            g.desc.append(f"reduce {red} axis={ax} keepdims={kd}")
            if kd and g.coin(0.6):
                r = g.op("sub", n, r); g.desc.append("  n minus reduced")
            pool.append(r)
        elif kind == "softmax":
            if d == 0:
                continue
            f = g.choice(["softmax", "log_softmax"])
            ax = int(rng.integers(-d, d))
            pool.append(g.op(f, n, axis=ax)); g.desc.append(f"{f} axis={ax}")
        elif kind == "layout":
            if d < 2:
                continue
            form = g.choice(["T", "perm", "flat", "split", "unit"])
            free_lead = n.g.shape[:1] == (None,)
            if form == "T":
                r = g.op(".T" if d == 2 else "transpose", n)
            elif form == "perm":
                perm = tuple(int(i) for i in rng.permutation(d))
                r = g.op("transpose", n, axes=perm)
            elif form == "flat":
                shp = (-1, int(np.prod(n.shape[1:]))) if free_lead or g.coin() else (-1,)
                r = g.op("reshape", n, shape=shp)
            elif form == "split":
                last = n.shape[-1]
                if last % 2 or free_lead and d < 2:
                    continue
                shp = (-1,) + n.shape[1:-1] + (2, last // 2) if free_lead else \
                    n.shape[:-1] + (2, last // 2)
                r = g.op("reshape", n, shape=shp)
            else:
                shp = (-1,) + n.shape[1:] + (1,) if free_lead else (1,) + n.shape
                r = g.op("reshape", n, shape=shp)
            pool.append(r); g.desc.append(f"layout {form} -> {r.shape}")
        elif kind == "layer":
            form = g.choice(["prelu", "maxout", "batch_norm", "dropout"])
            if form == "prelu":
                ashape = g.choice([(), (1,)] + ([(n.shape[1],)] if d >= 2 else []))
                alpha = g.param(ashape, 0.3)
                pool.append(g.op("prelu", n, alpha)); g.desc.append(f"prelu alpha {ashape}")
            elif form == "maxout":
                if d == 0 or n.g.shape[-1] is None:
                    continue
                pieces = g.choice((2, 3))
                if n.shape[-1] % pieces or g.coin(0.3):
                    if d not in (2, 3):
                        continue
                    k = n.shape[-1]
                    W = g.param((k, pieces * g.choice((1, 2))), 1 / np.sqrt(k))
                    n = g.op("matmul", n, W)
                axis = -1
                if d >= 2 and g.coin(0.3):   # maxout over another axis
                    cands = [a for a in range(n.ndim) if n.shape[a] % pieces == 0
                             and n.g.shape[a] is not None]
                    axis = g.choice(cands) if cands else -1
                pool.append(g.op("maxout", n, pieces=pieces, axis=axis))
                g.desc.append(f"maxout pieces={pieces} axis={axis}")
            elif form == "batch_norm":
                if d not in (2, 3) or None in n.g.shape[1:]:
                    continue
                training = g.coin(0.7) and n.shape[0] > 1
                feat = n.shape[1:]
                gshape = g.choice([feat, feat[-1:]])
                gamma = g.param(gshape, 0.5)
                gamma = g.op("add", gamma, 1.0)
                beta = g.param(gshape, 0.3)
                rm = g.param(feat, 0.3, trainable=False)
                rv_arr = (0.5 + g.rng.random(feat)).astype(dtype)
                rv = Node(gc.parameter(rv_arr, name=g._name("rv"), trainable=False),
                          torch.tensor(rv_arr, dtype=g.tdtype))
                g.params.append(rv.g)
                gflag, tflag = g.flag(training)
                r = Node(gc.batch_norm(n.g, gamma.g, beta.g, rm.g, rv.g, gflag, 0.1, 1e-5),
                         _t_batch_norm(n.t, gamma.t, beta.t, rm.t, rv.t, tflag, 0.1, 1e-5,
                                       composite=g.order == 3))
                g.stats += [(rm.g, rm.t, r.g), (rv.g, rv.t, r.g)]
                pool.append(r); g.desc.append(f"batch_norm training={training} gamma {gshape}")
            else:
                rate, training = (0.0, True) if g.coin() else (0.3, False)
                gflag, tflag = g.flag(training)
                pool.append(Node(gc.dropout(n.g, rate, gflag), F.dropout(n.t, rate, tflag)))
                g.desc.append(f"dropout rate={rate} training={training}")

    # the cost: a weighted sum of a few terms, most of them reading their tensor through a
    # random weighting (a plain sum's uniform upstream gradient hides wrong rules)
    terms = []
    float_pool = pool[1:] or pool
    for i in range(int(rng.integers(1, 4))):
        n = float_pool[-1] if i == 0 else g.choice(float_pool)
        kind = g.choice(["wsum", "wsum", "wsum", "sum", "mean", "mse", "mse_pair", "ce", "bce",
                         "bcel", "l1", "l2", "lse", "max", "gradpen"])
        if kind == "ce" and n.ndim in (1, 2, 3) and n.shape[-1 if n.ndim < 3 else 1] > 1 \
                and n.g.shape[-1] is not None:
            red = g.choice(["mean", "sum", "none"])
            if n.ndim == 1:
                y = g.labels((), n.shape[0])
            elif n.ndim == 2:
                y = g.labels((n.shape[0],), n.shape[1])
            else:
                y = g.labels((n.shape[0], n.shape[2]), n.shape[1])
            term = g.op("cross_entropy", n, y, reduction=red)
            if red == "none":   # per-row weights, sometimes depending on a parameter
                w = g.const(g.normal(term.shape)) if g.coin() else \
                    g.op("sigmoid", g.param(term.shape))
                term = g.op("sum", g.op("mul", term, w))
        elif kind == "mse":
            red = g.choice(["mean", "sum"])
            term = g.op("mse", n, g.const(g.normal(n.shape)), reduction=red)
        elif kind == "mse_pair":
            other = g.param(n.shape, 0.5)
            term = g.op("mse", other, n) if g.coin() else g.op("mse", n, other)
        elif kind == "bce":
            # (in the second order, p = sigmoid(3 tanh(n)) in (0.047, 0.953): the composite form
            # below has the exact derivative, F.binary_cross_entropy's (and graphc's) divide
            # by max(p (1 - p), 1e-12), different where p (1 - p) < 1e-12 (seed 7142))
            prob = g.op("sigmoid", n if g.order == 1 else g.op("mul", g.op("tanh", n), 3.0))
            target = g.choice([lambda: g.const(g.rng.random(n.shape)),
                               lambda: g.const(g.rng.integers(0, 2, n.shape)),   # hard labels
                               lambda: g.op("sigmoid", g.param(n.shape))])()
            red = g.choice(["mean", "sum"])
            if g.order == 1:
                term = g.op("binary_cross_entropy", prob, target, reduction=red)
            else:
                # torch's double backward of F.binary_cross_entropy adds 1e-12 to p and 1 - p
                # (binary_cross_entropy_double_backward): off by ~1e-12 / (1 - p) relatively,
                # 1e-7 for p = 1 - 1e-5; its second derivatives are compared with the
                # composite form (graphc's are exact)
                term = Node(gc.binary_cross_entropy(prob.g, target.g, red),
                            _t_bce_composite(prob.t, target.t, red))
        elif kind == "bcel":
            target = g.choice([lambda: g.const(g.rng.random(n.shape)),
                               lambda: g.const(g.rng.integers(0, 2, n.shape)),
                               lambda: g.op("sigmoid", g.param(n.shape))])()
            term = g.op("binary_cross_entropy_with_logits", n, target,
                        reduction=g.choice(["mean", "sum"]))
        elif kind in ("l1", "l2"):
            others = [m for m in float_pool if m is not n]
            ts = [n] + ([g.choice(others)] if others and g.coin() else [])
            term = g.op("l1_penalty" if kind == "l1" else "l2_penalty", ts)
        elif kind == "gradpen" and g.order == 3:
            # a gradient penalty: the cost reads a gradient (second order in every grad)
            _, gl, tl = g.choice(g.wrt)
            inner = g.op("sum", g.op("mul", n, g.const(g.normal(n.shape))))
            gg = gc.grad(inner.g, gl)
            tg = torch.autograd.grad(inner.t, tl, create_graph=True, allow_unused=True)[0] \
                if inner.t.requires_grad else None
            gp = Node(gg, torch.zeros_like(tl) if tg is None else tg)
            term = g.op("sum", g.op("square", gp))
        elif kind == "lse" and n.ndim >= 1:
            term = g.op("sum", g.op("logsumexp", n, axis=-1))
        elif kind == "max" and n.ndim >= 1:
            term = g.op("max", g.op("mul", n, g.const(g.normal(n.shape))))
        elif kind in ("sum", "mean"):
            term = g.op(kind, n)
        else:
            kind = "wsum"
            term = g.op("sum", g.op("mul", n, g.const(g.normal(n.shape))))
        g.desc.append(f"cost {kind}")
        if g.coin(0.2):  # a weight depending on a parameter (second order: d/d upstream)
            term = g.op("mul", term, g.op("sigmoid", g.param(())))
            g.desc.append("  weighted by sigmoid(s)")
        elif i:
            term = g.op("mul", term, float(np.round(g.normal(()), 2)) or 1.0)
        terms.append(term)
    cost = terms[0]
    for t in terms[1:]:
        cost = g.op("add", cost, t)

    # outputs: the cost, some intermediate values, gradients w.r.t. every input and parameter,
    # Hessian-vector products (grad of sum(grad * v)) in some cases
    wrt = list(g.wrt)
    # gc.grad with respect to intermediate tensors too (any tensor, not only leaves), in the
    # first order only: the derivative of a gradient with respect to an intermediate n counts
    # the paths from n into the backward graph, which depend on whether an op's backward reads
    # its input or its output (torch's elu reads x, graphc's its output y = n): not defined
    # by the function.  (Nor one whose tensor is the same object as another's on one side
    # only: torch's F.dropout in eval returns its input, graphc's with a placeholder flag a
    # new node.)
    def aliased(n):
        return any((m.t is n.t) != (m.g is n.g) for m in pool)
    inner = [(i, n) for i, n in enumerate(pool[1:]) if n.t.requires_grad and not n.t.is_leaf
             and n.g.op not in ("placeholder", "parameter") and not aliased(n)]
    nodes = [(f"node{i}", n.g, n.t) for i, n in inner if g.coin(0.15)] if g.order < 3 else []
    names, outputs, expected = ["cost"], [cost.g], [cost.t]
    for i, n in enumerate(pool[1:]):
        if g.coin(0.4):
            names.append(f"value {i}"); outputs.append(n.g); expected.append(n.t)
    want_hvp = g.order >= 2
    targets = wrt + nodes
    ggrads = gc.grad(cost.g, [w[1] for w in targets])
    if cost.t.requires_grad:
        tgrads = torch.autograd.grad(cost.t, [w[2] for w in targets], create_graph=want_hvp,
                                     allow_unused=True)
    else:  # the cost depends on no leaf through a differentiable path (step, comparisons)
        tgrads = [None] * len(targets)
    tgrads = [torch.zeros_like(w[2]) if gr is None else gr for gr, w in zip(tgrads, targets)]
    for (name, _, _), gg, tg in zip(targets, ggrads, tgrads):
        names.append(f"grad {name}"); outputs.append(gg); expected.append(tg)
    gleaves = [w[1] for w in wrt]
    tleaves = [w[2] for w in wrt]
    vs = []
    if want_hvp:
        vs = [np.asarray(g.normal(tuple(l.shape)), dtype) for l in tleaves]
        hv_g = None
        hv_t = torch.zeros((), dtype=g.tdtype)
        for gg, tg, v in zip(ggrads, tgrads, vs):
            term = gc.sum(gc.mul(gg, gc.constant(v)))
            hv_g = term if hv_g is None else gc.add(hv_g, term)
            hv_t = hv_t + (tg * torch.tensor(v)).sum()
        hgrads = gc.grad(hv_g, gleaves)
        if hv_t.requires_grad:
            th = torch.autograd.grad(hv_t, tleaves, allow_unused=True)
        else:
            th = [None] * len(tleaves)
        th = [torch.zeros_like(l) if h is None else h for h, l in zip(th, tleaves)]
        for (name, _, _), gh, tv in zip(wrt, hgrads, th):
            names.append(f"hvp {name}"); outputs.append(gh); expected.append(tv)
        g.desc.append("hvp")
    expected = [e.detach().numpy(force=True).copy() for e in expected]
    # running statistics are updated where their batch_norm runs: torch ran every node
    # eagerly, graphc computes only what the outputs need
    computed = {n.id for n in toposort(outputs)}
    stats = [(p, t.detach().numpy().copy()) for p, t, bn in g.stats if bn.id in computed]
    return Case(seed, dtype, g.inputs, g.feeds, outputs, expected, names, stats, g.params,
                g.desc, vs, tleaves, cost.t)


def run_case(case: Case, backend: str):
    """The case's outputs on ``backend`` and the running statistics after the call (parameters
    are reset to their starting values afterwards)."""
    start = [p.value for p in case.params]
    try:
        f = gc.compile(case.inputs, case.outputs, backend=backend)
        outs = [np.array(o, copy=True) for o in f(*case.feeds)]
        stats = [p.value for p, _ in case.stats]
    finally:
        for p, v in zip(case.params, start):
            p.value = v
    return outs, stats


def well_conditioned(case: Case, bound=1e6) -> bool:
    """Torch's values are finite and moderate (a random graph can blow up)."""
    return all(np.isfinite(e).all() and np.abs(e).max(initial=0) < bound for e in case.expected)


def _close(got, want, rtol, atol, extra=None):
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    tol = rtol * np.abs(want) + atol * scale
    if extra is not None:
        tol = tol + extra
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= tol))


def compare(case: Case, got, rtol=1e-7, atol=1e-9):
    """Discrepancies of a float64 run against torch float64."""
    outs, stats = got
    problems = []
    for name, a, e in zip(case.names, outs, case.expected):
        if not _close(np.asarray(a, np.float64), e, rtol, atol):
            problems.append(_describe(name, a, e))
    for (p, e), a in zip(case.stats, stats):
        if not _close(a, e, rtol, atol):
            problems.append(_describe(f"running stat {p.name}", a, e))
    return problems


def compare32(case32: Case, case64: Case, got, rtol=2e-4, atol=2e-5, cond=8.0):
    """Discrepancies of a float32 run against torch float32, each entry allowed ``cond`` times
    the distance between torch's float32 and float64 values on top of rtol/atol."""
    outs, stats = got
    problems = []
    for name, a, e, e64 in zip(case32.names, outs, case32.expected, case64.expected):
        e = e.astype(np.float64)
        if not _close(np.asarray(a, np.float64), e, rtol, atol, cond * np.abs(e - e64)):
            problems.append(_describe(name, a, e))
    return problems


def _describe(name, a, e):
    a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
    if a.shape != e.shape:
        return f"{name}: shape {a.shape} vs torch {e.shape}"
    diff = np.abs(a - e)
    i = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return f"{name}: max abs diff {diff.max(initial=0):.3g} at {i}: graphc {a[i]!r} torch {e[i]!r}"
