"""The shared table of op test cases, one ``Case`` per public op (and per parameter setting).

Each case holds a builder (symbolic tensors -> tensor, through the public API), an *independent*
numpy formula (written here from the textbook definition, never the registry's own reference),
the domain each input is drawn from, and the input shapes to try (broadcasting, size-1 dims,
scalars).  The helpers take ``backend="numpy"`` so that the C / CUDA / OpenCL backend tests can
reuse the same table::

    from op_cases import CASES, case_params, check_forward, check_grad_vs_ref
    @pytest.mark.parametrize("case,shapes", case_params())
    def test_forward_c(case, shapes):
        check_forward(case, shapes, "float32", backend="c")

Domains (per input): ``"real"`` uniform in (-2, 2) kept 0.05 away from the kinks -1, 0, 1;
``"positive"`` (0.5, 2); ``"nonzero"`` |x| in (0.5, 2); ``"unit"`` (0.05, 0.95); ``"lattice0"`` /
``"lattice1"`` values on two interleaved grids 0.5 apart (so a lattice0 value and a lattice1 value
are never closer than 0.25: no ties for maximum/minimum); ``"small_int"`` integers -2..2 stored as
floats (ties on purpose, for ``equal``); ``"bool"``; ``("label", C)`` int64 class labels in [0, C).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

import graphc as gc

# -- independent numpy formulas --------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softplus(x):
    return np.log1p(np.exp(x))


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return np.log(np_softmax(x, axis))


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


def np_gelu(x):
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def np_elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1.0))


def np_maxout(x, pieces, axis=-1):
    axis = axis % x.ndim
    shape = x.shape[:axis] + (x.shape[axis] // pieces, pieces) + x.shape[axis + 1:]
    return np.max(x.reshape(shape), axis=axis + 1)


def reduce_loss(v, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](v)


def np_cross_entropy(logits, labels, reduction="mean"):
    n = logits.shape[0]
    return reduce_loss(-np_log_softmax(logits, 1)[np.arange(n), labels], reduction)


def np_bce(p, t, reduction="mean"):
    return reduce_loss(-(t * np.log(p) + (1 - t) * np.log(1 - p)), reduction)


def np_bce_logits(x, t, reduction="mean"):
    s = np_sigmoid(x)
    return reduce_loss(-(t * np.log(s) + (1 - t) * np.log(1 - s)), reduction)


# -- the case record ---------------------------------------------------------------------------

@dataclass
class Case:
    """One op (with fixed parameters) to test on every backend."""

    id: str
    build: Callable            # graphc tensors -> graphc tensor
    ref: Callable              # float64 numpy arrays -> numpy array (independent formula)
    shapes: Sequence[tuple]    # each entry: a tuple of input shapes
    domains: tuple             # per input, see the module docstring
    grad: Optional[tuple] = None   # inputs to differentiate (default: every float input)
    differentiable: bool = True
    torch: Optional[Callable] = None  # torch tensors -> torch tensor (float64 parity)
    out_dtype: Optional[str] = None   # "bool" for comparisons; None: the float input dtype
    tol32: tuple = (2e-5, 2e-6)    # (rtol, atol) of the float32 forward check
    tol64: tuple = (1e-9, 1e-12)
    grad_tol: tuple = (1e-2, 1e-4)  # (rtol, atol) of the finite-difference checks
    tags: tuple = field(default_factory=tuple)

    def grad_inputs(self) -> tuple:
        if not self.differentiable:
            return ()
        if self.grad is not None:
            return self.grad
        return tuple(i for i, d in enumerate(self.domains) if _is_float_domain(d))

    def __repr__(self):
        return f"Case({self.id})"


def _is_float_domain(d) -> bool:
    return not (d == "bool" or (isinstance(d, tuple) and d[0] == "label"))


def sample(domain, shape, dtype, rng) -> np.ndarray:
    """Draw an input of ``shape`` from ``domain`` (deterministic for a seeded ``rng``)."""
    shape = tuple(shape)
    if isinstance(domain, tuple) and domain[0] == "label":
        return rng.integers(0, domain[1], size=shape).astype(np.int64)
    if domain == "bool":
        return rng.random(shape) < 0.5
    if domain == "real":
        x = rng.uniform(-2.0, 2.0, size=shape)
        for k in (-1.0, 0.0, 1.0):  # keep away from kinks (relu, abs, hard_tanh, ...)
            near = np.abs(x - k) < 0.05
            x = np.where(near, k + np.where(x >= k, 0.05, -0.05) + 0.05 * (x - k), x)
    elif domain == "positive":
        x = rng.uniform(0.5, 2.0, size=shape)
    elif domain == "nonzero":
        x = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    elif domain == "unit":
        x = rng.uniform(0.05, 0.95, size=shape)
    elif domain in ("lattice0", "lattice1"):
        off = 0.1 if domain == "lattice0" else 0.35
        x = rng.integers(-4, 4, size=shape) * 0.5 + off
    elif domain == "small_int":
        x = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        raise ValueError(f"unknown domain {domain!r}")
    return np.asarray(x, dtype=dtype)


def sample_inputs(case: Case, shapes, dtype="float64", seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [sample(d, s, dtype if _is_float_domain(d) else None, rng)
            for d, s in zip(case.domains, shapes)]


def placeholders_for(arrays, free_batch=False) -> list:
    """Placeholders for ``arrays``; with ``free_batch`` the first dimension of each is free
    (``None``), as a batch dimension would be."""
    def shape(a):
        return (None,) + a.shape[1:] if free_batch and a.ndim else a.shape
    return [gc.placeholder(shape(a), a.dtype.name, name=f"in{i}") for i, a in enumerate(arrays)]


# -- helpers usable with any backend ----------------------------------------------------------

def check_forward(case: Case, shapes, dtype="float32", backend="numpy", seed=0,
                  free_batch=False):
    """Compile ``case`` on ``backend`` and compare with the independent formula (in float64 on
    the same, possibly float32-rounded, inputs); ``free_batch``: free first dimensions."""
    arrays = sample_inputs(case, shapes, dtype, seed)
    phs = placeholders_for(arrays, free_batch)
    out = case.build(*phs)
    f = gc.compile(phs, out, backend=backend)
    got = f(*arrays)
    want = np.asarray(case.ref(*[a.astype(np.float64) if a.dtype.kind == "f" else a
                                 for a in arrays]))
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert len(out.shape) == got.ndim and all(d in (None, g) for d, g in zip(out.shape, got.shape))
    assert got.dtype.name == (case.out_dtype or dtype), (got.dtype, case.out_dtype, dtype)
    if case.out_dtype == "bool":
        np.testing.assert_array_equal(got, want.astype(bool))
    else:
        rtol, atol = case.tol32 if dtype == "float32" else case.tol64
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol)
    return got


def weighted_cost(out, rng):
    """A scalar cost sum(out * w) with fixed random weights (so e.g. softmax's gradient, whose
    plain sum is constant, is exercised)."""
    w = rng.standard_normal(out.shape) if out.shape else np.asarray(rng.standard_normal())
    return gc.sum(out * gc.constant(w, dtype=out.dtype)), w


def numeric_grad(fn, arrays, k, eps=1e-6):
    """Central finite differences of the scalar ``fn(*arrays)`` with respect to arrays[k]."""
    arrays = [a.copy() for a in arrays]
    x = arrays[k]
    g = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = fn(*arrays)
        flat[i] = old - eps
        minus = fn(*arrays)
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return g


def check_case_grad(case: Case, shapes, seed=0):
    """``gc.check_grad`` (float64 central differences through the interpreter)."""
    arrays = sample_inputs(case, shapes, "float64", seed)
    phs = placeholders_for(arrays)
    out = case.build(*phs)
    cost, _ = weighted_cost(out, np.random.default_rng(seed + 1))
    wrt = [phs[i] for i in case.grad_inputs()]
    rtol, atol = case.grad_tol
    gc.check_grad(cost, wrt, dict(zip(phs, arrays)), rtol=rtol, atol=atol)


def check_grad_vs_ref(case: Case, shapes, backend="numpy", dtype="float64", seed=0,
                      free_batch=False):
    """``gc.grad`` compiled on ``backend`` against finite differences of the independent numpy
    formula (float64); ``free_batch`` builds the graph with free first dimensions."""
    arrays = sample_inputs(case, shapes, dtype, seed)
    phs = placeholders_for(arrays, free_batch)
    out = case.build(*phs)
    want_shape = np.shape(case.ref(*[a.astype(np.float64) if a.dtype.kind == "f" else a
                                     for a in arrays]))
    w = np.random.default_rng(seed + 1).standard_normal(want_shape)
    cost = gc.sum(out * gc.constant(w, dtype=out.dtype))
    idx = case.grad_inputs()
    grads = gc.grad(cost, [phs[i] for i in idx])
    f = gc.compile(phs, grads, backend=backend)
    got = f(*arrays)
    a64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]

    def ref_cost(*xs):
        return float(np.sum(np.asarray(case.ref(*xs)) * w))

    rtol, atol = case.grad_tol
    if dtype == "float32":
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-3)
    for k, g in zip(idx, got):
        assert g.shape == arrays[k].shape
        want = numeric_grad(ref_cost, a64, k)
        np.testing.assert_allclose(g.astype(np.float64), want, rtol=rtol, atol=atol,
                                   err_msg=f"{case.id}: gradient wrt input {k}")


# -- the table ----------------------------------------------------------------------------------

UNARY_SHAPES = [((),), ((5,),), ((3, 1),), ((2, 3, 4),), ((1, 1),)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((5,), (2, 5)), ((), (2, 3)),
                 ((2, 3), ()), ((1,), (4, 1)), ((2, 1, 3), (4, 1))]
TERNARY_SHAPES = [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((4,), (3, 1), (1, 4))]
REDUCE_AXES = [(None, False), (None, True), (0, False), (-1, True), ((0, 2), False),
               ((0, 2), True), (1, False)]


def _t():  # torch, imported lazily so the table loads without it
    import torch
    return torch


CASES: list[Case] = []


def add_case(*args, **kwargs) -> Case:
    c = Case(*args, **kwargs)
    CASES.append(c)
    return c


# arithmetic
add_case("add", gc.add, np.add, BINARY_SHAPES, ("real", "real"), torch=lambda a, b: a + b)
add_case("sub", gc.sub, np.subtract, BINARY_SHAPES, ("real", "real"), torch=lambda a, b: a - b)
add_case("mul", gc.mul, np.multiply, BINARY_SHAPES, ("real", "real"), torch=lambda a, b: a * b)
add_case("div", gc.div, np.divide, BINARY_SHAPES, ("real", "nonzero"), torch=lambda a, b: a / b)
add_case("neg", gc.neg, np.negative, UNARY_SHAPES, ("real",), torch=lambda a: -a)
add_case("pow", gc.pow, np.power, BINARY_SHAPES, ("positive", "real"),
         torch=lambda a, b: a ** b, tol32=(1e-5, 1e-6))
add_case("pow_scalar_exponent", lambda a: a ** 3, lambda a: a ** 3, UNARY_SHAPES, ("real",),
         torch=lambda a: a ** 3)

# matmul: 1-D, 2-D, batched with broadcast batch dims
MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
                 ((1, 1), (1, 1)), ((4,), (2, 4, 3))]
add_case("matmul", gc.matmul, np.matmul, MATMUL_SHAPES, ("real", "real"),
         torch=lambda a, b: a @ b, tol32=(1e-4, 1e-5))

# layout
add_case("transpose", gc.transpose, np.transpose, [((2, 3, 4),), ((3, 1),), ((5,),), ((),)],
         ("real",), torch=lambda a: a.permute(tuple(reversed(range(a.ndim)))))
for _axes in [(1, 0, 2), (2, 0, 1), (0, 2, 1), (-1, 0, 1)]:
    add_case(f"transpose_axes{_axes}", lambda a, ax=_axes: gc.transpose(a, ax),
             lambda a, ax=_axes: np.transpose(a, ax), [((2, 3, 4),), ((1, 3, 1),)], ("real",),
             torch=lambda a, ax=_axes: a.permute(*ax))
for _target in [(6, 4), (-1,), (4, -1), (2, 1, 12), (1, 24, 1), (3, 2, 4)]:
    add_case(f"reshape{_target}", lambda a, s=_target: gc.reshape(a, s),
             lambda a, s=_target: np.reshape(a, s), [((2, 3, 4),), ((24,),), ((4, 6),)],
             ("real",), torch=lambda a, s=_target: a.reshape(s))

# elementwise math
add_case("exp", gc.exp, np.exp, UNARY_SHAPES, ("real",), torch=lambda a: a.exp())
add_case("log", gc.log, np.log, UNARY_SHAPES, ("positive",), torch=lambda a: a.log())
add_case("sqrt", gc.sqrt, np.sqrt, UNARY_SHAPES, ("positive",), torch=lambda a: a.sqrt())
add_case("expm1", gc.expm1, np.expm1, UNARY_SHAPES, ("real",), torch=lambda a: a.expm1())
add_case("log1p", gc.log1p, np.log1p, UNARY_SHAPES, ("positive",), torch=lambda a: a.log1p())
add_case("abs", gc.abs, np.abs, UNARY_SHAPES, ("real",), torch=lambda a: a.abs())
add_case("cos", gc.cos, np.cos, UNARY_SHAPES, ("real",), torch=lambda a: a.cos())
add_case("sin", gc.sin, np.sin, UNARY_SHAPES, ("real",), torch=lambda a: a.sin())
add_case("square", gc.square, lambda a: a * a, UNARY_SHAPES, ("real",), torch=lambda a: a * a)
add_case("maximum", gc.maximum, np.maximum, BINARY_SHAPES, ("lattice0", "lattice1"),
         torch=lambda a, b: _t().maximum(a, b))
add_case("minimum", gc.minimum, np.minimum, BINARY_SHAPES, ("lattice0", "lattice1"),
         torch=lambda a, b: _t().minimum(a, b))
add_case("where", gc.where, lambda c, a, b: np.where(c, a, b), TERNARY_SHAPES,
         ("bool", "real", "real"), torch=lambda c, a, b: _t().where(c, a, b))

# comparisons (boolean, no gradient)
for _name, _np in (("greater", np.greater), ("less", np.less), ("equal", np.equal)):
    add_case(_name, getattr(gc, _name), _np, BINARY_SHAPES, ("small_int", "small_int"),
             differentiable=False, out_dtype="bool")

# reductions
for _name, _np in (("sum", np.sum), ("mean", np.mean), ("max", np.max),
                   ("logsumexp", np_logsumexp)):
    for _axis, _keep in REDUCE_AXES:
        _shapes = [((2, 3, 4),)] + ([((5,),), ((1, 3, 1),)] if _axis in (None, 0) else [])
        if _axis is None:
            _shapes.append(((),)) if _name != "max" else None

        def _torch(a, name=_name, axis=_axis, keep=_keep):
            torch = _t()
            dims = tuple(range(a.ndim)) if axis is None else (
                (axis,) if isinstance(axis, int) else axis)
            if a.ndim == 0:
                return a
            fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax,
                  "logsumexp": torch.logsumexp}[name]
            return fn(a, dim=dims, keepdim=keep)

        add_case(f"{_name}(axis={_axis},keepdims={_keep})",
                 lambda a, f=getattr(gc, _name), ax=_axis, k=_keep: f(a, axis=ax, keepdims=k),
                 lambda a, f=_np, ax=_axis, k=_keep: f(a, axis=ax, keepdims=k),
                 _shapes, ("real",), torch=_torch, tol32=(1e-4, 1e-5))

# activations
ACT = [
    ("sigmoid", gc.sigmoid, np_sigmoid, lambda a: a.sigmoid()),
    ("tanh", gc.tanh, np.tanh, lambda a: a.tanh()),
    ("relu", gc.relu, lambda x: np.maximum(x, 0), lambda a: a.relu()),
    ("leaky_relu", gc.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x),
     lambda a: _t().nn.functional.leaky_relu(a, 0.01)),
    ("leaky_relu(alpha=0.2)", lambda x: gc.leaky_relu(x, alpha=0.2),
     lambda x: np.where(x > 0, x, 0.2 * x), lambda a: _t().nn.functional.leaky_relu(a, 0.2)),
    ("elu", gc.elu, np_elu, lambda a: _t().nn.functional.elu(a)),
    ("elu(alpha=0.5)", lambda x: gc.elu(x, alpha=0.5), lambda x: np_elu(x, 0.5),
     lambda a: _t().nn.functional.elu(a, 0.5)),
    ("selu", gc.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
     lambda a: _t().nn.functional.selu(a)),
    ("softplus", gc.softplus, np_softplus, lambda a: _t().nn.functional.softplus(a)),
    ("hard_tanh", gc.hard_tanh, lambda x: np.clip(x, -1, 1),
     lambda a: _t().nn.functional.hardtanh(a)),
    ("softsign", gc.softsign, lambda x: x / (1 + np.abs(x)),
     lambda a: _t().nn.functional.softsign(a)),
    ("silu", gc.silu, lambda x: x * np_sigmoid(x), lambda a: _t().nn.functional.silu(a)),
    ("swish", gc.swish, lambda x: x / (1 + np.exp(-x)), lambda a: _t().nn.functional.silu(a)),
    ("mish", gc.mish, lambda x: x * np.tanh(np_softplus(x)),
     lambda a: _t().nn.functional.mish(a)),
    ("gelu", gc.gelu, np_gelu, lambda a: _t().nn.functional.gelu(a)),
    ("gelu(approximate=tanh)", lambda x: gc.gelu(x, approximate="tanh"), np_gelu_tanh,
     lambda a: _t().nn.functional.gelu(a, approximate="tanh")),
]
for _name, _fn, _np, _torch in ACT:
    add_case(_name, _fn, _np, UNARY_SHAPES, ("real",), torch=_torch)
add_case("step", gc.step, lambda x: (x > 0).astype(np.float64), UNARY_SHAPES, ("real",),
         differentiable=False, torch=lambda a: (a > 0).to(a.dtype))

# prelu: alpha a tensor of shape (C,) (channels: axis 1, as torch) or a scalar
def _np_prelu(x, a):
    a = np.asarray(a)
    if a.ndim == 1 and a.size > 1 and x.ndim >= 3:
        a = a.reshape((-1,) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, a * x)


def _torch_prelu(x, a):
    torch = _t()
    if x.ndim >= 2 and a.ndim <= 1:
        return torch.nn.functional.prelu(x, a.reshape(-1))
    return torch.where(x > 0, x, a * x)


add_case("prelu", gc.prelu, _np_prelu,
         [((4, 3), (3,)), ((2, 3), ()), ((5, 1), (1,)), ((2, 3, 4), (3,)), ((2, 3, 2, 2), (3,))],
         ("real", "unit"), torch=lambda x, a: _torch_prelu(x, a))

# maxout (consecutive groups) and the softmax family
for _pieces, _axis in [(2, -1), (3, -1), (2, 0), (1, -1), (6, 1)]:
    def _maxout_torch(a, p=_pieces, ax=_axis):
        ax = ax % a.ndim
        shape = a.shape[:ax] + (a.shape[ax] // p, p) + a.shape[ax + 1:]
        return a.reshape(shape).amax(dim=ax + 1)

    add_case(f"maxout(pieces={_pieces},axis={_axis})",
             lambda a, p=_pieces, ax=_axis: gc.maxout(a, p, axis=ax),
             lambda a, p=_pieces, ax=_axis: np_maxout(a, p, ax),
             [((4, 6),), ((2, 6, 6),)] if _axis != 0 else [((6, 4),), ((4, 3),)],
             ("real",), torch=_maxout_torch)

for _axis in (0, -1, 1):
    _sh = [((4, 5),), ((3, 1),), ((2, 3, 4),)] + ([((6,),)] if _axis != 1 else [])
    add_case(f"softmax(axis={_axis})", lambda a, ax=_axis: gc.softmax(a, axis=ax),
             lambda a, ax=_axis: np_softmax(a, ax), _sh, ("real",),
             torch=lambda a, ax=_axis: _t().softmax(a, dim=ax))
    add_case(f"log_softmax(axis={_axis})", lambda a, ax=_axis: gc.log_softmax(a, axis=ax),
             lambda a, ax=_axis: np_log_softmax(a, ax), _sh, ("real",),
             torch=lambda a, ax=_axis: _t().log_softmax(a, dim=ax))

# losses, each reduction
LOSS_SHAPES = [((4, 3), (4, 3)), ((5,), (5,)), ((1, 1), (1, 1)), ((4, 3), (3,))]
for _red in ("mean", "sum", "none"):
    add_case(f"mse({_red})", lambda p, t, r=_red: gc.mse(p, t, reduction=r),
             lambda p, t, r=_red: reduce_loss((p - t) ** 2, r), LOSS_SHAPES, ("real", "real"),
             torch=lambda p, t, r=_red: _t().nn.functional.mse_loss(
                 *_t().broadcast_tensors(p, t), reduction=r), tol32=(1e-4, 1e-5))
    add_case(f"binary_cross_entropy({_red})",
             lambda p, t, r=_red: gc.binary_cross_entropy(p, t, reduction=r),
             lambda p, t, r=_red: np_bce(p, t, r), LOSS_SHAPES, ("unit", "unit"),
             grad=(0,), torch=lambda p, t, r=_red: _t().nn.functional.binary_cross_entropy(
                 *_t().broadcast_tensors(p, t), reduction=r), tol32=(1e-4, 1e-5))
    add_case(f"binary_cross_entropy_with_logits({_red})",
             lambda x, t, r=_red: gc.binary_cross_entropy_with_logits(x, t, reduction=r),
             lambda x, t, r=_red: np_bce_logits(x, t, r), LOSS_SHAPES, ("real", "unit"),
             torch=lambda x, t, r=_red: _t().nn.functional.binary_cross_entropy_with_logits(
                 *_t().broadcast_tensors(x, t), reduction=r), tol32=(1e-4, 1e-5))
    add_case(f"cross_entropy({_red})",
             lambda x, y, r=_red: gc.cross_entropy(x, y, reduction=r),
             lambda x, y, r=_red: np_cross_entropy(x, y, r),
             [((4, 5), (4,))], ("real", ("label", 5)),
             torch=lambda x, y, r=_red: _t().nn.functional.cross_entropy(x, y, reduction=r),
             tol32=(1e-4, 1e-5))
for _red in ("mean", "sum", "none"):
    add_case(f"cross_entropy_one_class({_red})",
             lambda x, y, r=_red: gc.cross_entropy(x, y, reduction=r),
             lambda x, y, r=_red: np_cross_entropy(x, y, r), [((6, 1), (6,))],
             ("real", ("label", 1)), torch=lambda x, y, r=_red: _t().nn.functional.cross_entropy(
                 x, y, reduction=r))
    add_case(f"cross_entropy_batch1({_red})",
             lambda x, y, r=_red: gc.cross_entropy(x, y, reduction=r),
             lambda x, y, r=_red: np_cross_entropy(x, y, r), [((1, 3), (1,))],
             ("real", ("label", 3)), torch=lambda x, y, r=_red: _t().nn.functional.cross_entropy(
                 x, y, reduction=r))

add_case("l1_penalty", lambda a, b: gc.l1_penalty([a, b]),
         lambda a, b: np.sum(np.abs(a)) + np.sum(np.abs(b)), [((3, 4), (4,)), ((2, 2), ())],
         ("real", "real"), torch=lambda a, b: a.abs().sum() + b.abs().sum())
add_case("l1_penalty_single", lambda a: gc.l1_penalty(a), lambda a: np.sum(np.abs(a)),
         [((3, 4),)], ("real",), torch=lambda a: a.abs().sum())
add_case("l2_penalty", lambda a, b: gc.l2_penalty([a, b]),
         lambda a, b: np.sum(a * a) + np.sum(b * b), [((3, 4), (4,)), ((2, 2), ())],
         ("real", "real"), torch=lambda a, b: (a * a).sum() + (b * b).sum(), tol32=(1e-4, 1e-5))
add_case("l2_penalty_single", lambda a: gc.l2_penalty(a), lambda a: np.sum(a * a),
         [((3, 4),)], ("real",), torch=lambda a: (a * a).sum(), tol32=(1e-4, 1e-5))

# training-time layers in their inference form (training forms: tests of their own)
add_case("dropout(training=False)", lambda a: gc.dropout(a, 0.5, training=False),
         lambda a: a, [((3, 4),), ((),)], ("real",), torch=lambda a: a)


def _bn_inference(x, gamma, beta, rm, rv):
    return gamma * (x - rm) / np.sqrt(rv + 1e-5) + beta


_BN_RM = np.array([0.5, -0.25, 1.0])
_BN_RV = np.array([1.5, 0.5, 2.0])


def _bn_fixed(x, gamma, beta):
    rm = gc.parameter(_BN_RM.astype(x.dtype), trainable=False)
    rv = gc.parameter(_BN_RV.astype(x.dtype), trainable=False)
    return gc.batch_norm(x, gamma, beta, rm, rv, training=False)


add_case("batch_norm(training=False)", _bn_fixed,
         lambda x, g, b: _bn_inference(x, g, b, _BN_RM, _BN_RV), [((4, 3), (3,), (3,))],
         ("real", "positive", "real"),
         torch=lambda x, g, b: _t().nn.functional.batch_norm(
             x, _t().tensor(_BN_RM, dtype=x.dtype), _t().tensor(_BN_RV, dtype=x.dtype), g, b,
             training=False, eps=1e-5))


def _bn_train(x, gamma, beta):
    rm = gc.parameter(np.zeros(x.shape[1:], dtype=x.dtype), trainable=False)
    rv = gc.parameter(np.ones(x.shape[1:], dtype=x.dtype), trainable=False)
    return gc.batch_norm(x, gamma, beta, rm, rv, training=True)


def _np_bn_train(x, g, b):
    mu = x.mean(0)
    var = x.var(0)
    return g * (x - mu) / np.sqrt(var + 1e-5) + b


add_case("batch_norm(training=True)", _bn_train, _np_bn_train,
         [((5, 3), (3,), (3,)), ((4, 2, 3), (2, 3), (2, 3))], ("real", "positive", "real"),
         torch=lambda x, g, b: _t().nn.functional.batch_norm(
             x.reshape(x.shape[0], -1), None, None, g.reshape(-1), b.reshape(-1),
             training=True, eps=1e-5).reshape(x.shape), tol32=(1e-4, 1e-5))


def case_params(pred: Callable[[Case], bool] = lambda c: True, differentiable=False):
    """``(case, shapes)`` pairs for ``pytest.mark.parametrize`` with readable ids."""
    import pytest
    out = []
    for c in CASES:
        if not pred(c) or (differentiable and not c.grad_inputs()):
            continue
        for shapes in c.shapes:
            sid = "x".join(str(tuple(s)).replace(" ", "") for s in shapes)
            out.append(pytest.param(c, shapes, id=f"{c.id}-{sid}"))
    return out


def by_id(name: str) -> Case:
    for c in CASES:
        if c.id == name:
            return c
    raise KeyError(name)
