"""Elementwise ops: every one is a single SymPy expression over its arguments.

One primitive, ``ew``, carries the expression (attr ``expr``), a human label and the output
dtype.  Its numpy reference is the lambdified expression, its gradient with respect to argument
i is another ``ew`` node computing ``g * d expr / d a_i`` (so derivatives of any order come from
SymPy), and the C and GPU renderers print the same expression.  The named ops of the public API
(``relu``, ``add``, ...) are thin constructors listed in ``ELEMENTWISE``.  Python scalars mixed
into an op become literals of its expression rather than graph nodes.
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1 as _Expm1
from sympy.codegen.cfunctions import log1p as _Log1p

from ..errors import ShapeError
from ..ir import Tensor, is_float
from ..symbolic import (A, IPow, Max2, Min2, Sigmoid, Softplus, free_args, numpy_function,
                         pow_derivatives)
from .registry import OpDef, broadcast_shapes, make, promote, register

Scalar = (int, float, bool, np.integer, np.floating, np.bool_)


# -- the primitive -------------------------------------------------------------------------

def _infer(inputs, attrs):
    shape = broadcast_shapes(attrs.get("label", "ew"), *[t.shape for t in inputs])
    return shape, attrs["dtype"]


def _ref(node, *values):
    fn = numpy_function(node.attrs["expr"], len(values))
    if np.dtype(node.dtype).kind == "f":
        # integer and bool operands of float math compute in the result's type, as in PyTorch
        # and the compiled backends (numpy computed int8 / uint8 math in float16, and wrapped
        # -x of unsigned values first: sigmoid(uint8 3) was 0)
        values = [v if np.asarray(v).dtype.kind == "f" else np.asarray(v).astype(node.dtype)
                  for v in values]
    elif node.dtype != "bool":
        # bool operands of integer arithmetic compute in int64, as in the compiled backends
        # (numpy would negate bools with a TypeError)
        values = [v.astype(np.int64) if np.asarray(v).dtype == np.bool_ else v for v in values]
    if len({np.shape(v) for v in values}) > 1:
        # broadcast views: numpy's printing of And/Or (logical_and.reduce of a tuple) does
        # not broadcast operands of different shapes
        values = np.broadcast_arrays(*values)
    with np.errstate(all="ignore"):
        out = np.asarray(fn(*values))
    shape = np.broadcast_shapes(*[np.shape(v) for v in values]) if values else ()
    if out.shape != shape:
        out = np.broadcast_to(out, shape)
    return out.astype(node.dtype, copy=False)


def _no_dirac(d: sp.Expr) -> sp.Expr:
    """d with DiracDelta (and its derivatives) set to 0: the derivative of sign(x) (from
    |x|'' in abs, softsign, l1_penalty) is 0 almost everywhere, as in PyTorch, and no printer
    handles DiracDelta."""
    if d.has(sp.DiracDelta):
        d = d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return d


def _grad(node, g):
    expr = node.attrs["expr"]
    n = len(node.inputs)
    dout = node.attrs.get("dout")
    if dout is not None:
        # derivative written in terms of the output y: the input (e.g. a pre-activation) is then
        # not needed by the backward pass, so it can be fused into the producing GEMM
        return [ew(A[1] * dout, [node, g], label=f"{node.attrs['label']}'", dtype=node.dtype)]
    dexpr = node.attrs.get("dexpr")
    grads = []
    for i, x in enumerate(node.inputs):
        if not is_float(x.dtype) or A[i] not in expr.free_symbols:
            grads.append(None)
            continue
        # dexpr: derivatives given by the op (PyTorch's conventions where the textbook
        # derivative gives NaN: pow at 0, binary_cross_entropy at p = 0 or 1)
        d = dexpr[i] if dexpr is not None else _no_dirac(sp.diff(expr, A[i]))
        if d == 0:
            grads.append(None)
            continue
        label = f"d{node.attrs['label']}/d{i}" if n > 1 else f"{node.attrs['label']}'"
        grads.append(ew(A[n] * d, list(node.inputs) + [g], label=label, dtype=x.dtype))
    return grads


register(OpDef("ew", _infer, _ref, _grad, kind="elementwise",
               doc="elementwise SymPy expression over broadcast inputs"))


def canonical(expr: sp.Expr, inputs: list) -> tuple[sp.Expr, list[Tensor]]:
    """Drop the inputs ``expr`` does not use, merge repeated ones, renumber the symbols."""
    expr, kept, _ = _canonical(expr, inputs)
    return expr, kept


def _canonical(expr, inputs, merge=True):
    """canonical(), also returning the renaming {A[old]: A[new]} of the used symbols."""
    used = sorted(free_args(expr))
    kept: list[Tensor] = []
    subs = {}
    for i in used:
        t = inputs[i]
        j = next((k for k, u in enumerate(kept) if u is t), None) if merge else None
        if j is None:
            kept.append(t)
            j = len(kept) - 1
        subs[A[i]] = A[j]
    renaming = {a: b for a, b in subs.items() if a != b}
    if renaming:  # xreplace substitutes simultaneously, so renaming needs no temporaries
        merged = expr.xreplace(renaming)
        if merge and len(kept) < len(used) and _cancelled(expr, merged, subs):
            # merging made SymPy cancel terms: x - x is 0, x / x is 1 and x / x**2 is 1 / x,
            # which IEEE (and PyTorch) make NaN for x = inf, NaN (and 0): keep the repeated
            # input apart
            return _canonical(expr, inputs, merge=False)
        expr = merged
    return expr, kept, subs


# Values a merged input is probed at: IEEE's special values, where an algebraic cancellation
# (x - x -> 0, x / x**2 -> 1 / x) changes the result, and ordinary ones
_PROBES = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.5, -2.5, 0.3])


def _cancelled(expr, merged, subs) -> bool:
    """Whether merging repeated inputs changed what ``expr`` computes under IEEE arithmetic:
    SymPy combines the occurrences of a merged symbol as real algebra does, which is exact
    when they only add up (x * x -> x**2, x + x -> 2 x) but not when they cancel (x - x -> 0,
    x / x -> 1, -g x / x**2 -> -g / x: NaN at x = inf in IEEE arithmetic and PyTorch, 0 or 1
    after merging).  Each merged input is evaluated at special and ordinary values (the
    other inputs at ordinary ones) through both expressions; any difference keeps it apart.
    Unevaluated substitution (fusion's ``evaluate(False)``) combines nothing."""
    from sympy.core.parameters import global_parameters

    if not global_parameters.evaluate:
        return False
    groups: dict = {}
    for old, new in subs.items():
        groups.setdefault(new, []).append(old)
    n_new = len(groups)
    n_old = max(A.index(s) for s in subs) + 1
    try:
        f_old, f_new = numpy_function(expr, n_old), numpy_function(merged, n_new)
        for new, olds in groups.items():
            if len(olds) < 2:
                continue
            values = {s: np.full(len(_PROBES), 0.75 + 0.125 * A.index(s)) for s in groups}
            values[new] = _PROBES
            old_args = [np.zeros(len(_PROBES))] * n_old
            for o, nw in subs.items():
                old_args[A.index(o)] = values[nw]
            with np.errstate(all="ignore"):
                a = np.broadcast_to(np.asarray(f_old(*old_args), dtype=np.float64), _PROBES.shape)
                b = np.broadcast_to(np.asarray(f_new(*[values[A[j]] for j in range(n_new)]),
                                               dtype=np.float64), _PROBES.shape)
            if not np.all(np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)):
                return True
    except Exception:  # an expression numpy cannot probe: keep the inputs apart (exact)
        return True
    return False


def _renumber_derivatives(dexpr, subs, n_kept):
    """Per-input derivatives ``dexpr`` (over the original symbols) for the kept inputs: renamed
    by ``subs``, those of merged inputs summed (chain rule), unused inputs 0."""
    out = [sp.S.Zero] * n_kept
    for i, d in enumerate(dexpr):
        if A[i] in subs:
            j = A.index(subs[A[i]])
            out[j] = out[j] + d.xreplace(subs)
    return tuple(out)


def ew(expr: sp.Expr, inputs: list, label: str, dtype, dout=None, dexpr=None) -> Tensor:
    """Build an ``ew`` node computing ``expr`` over ``inputs`` (symbols A[i] = inputs[i]).

    Inputs the expression does not use are dropped and repeated inputs merged, so equal
    computations give equal nodes (which CSE and the compile cache rely on).  The identity
    expression returns its input unchanged when no broadcast or cast is needed.  ``dexpr``:
    optional derivatives of ``expr`` per input, used by the gradient instead of SymPy's."""
    expr, kept, subs = _canonical(sp.sympify(expr), inputs)
    dtype = np.dtype(dtype).name
    if not inputs:
        raise ShapeError(f"{label}: an elementwise op needs at least one tensor input")
    shape = broadcast_shapes(label, *[t.shape for t in inputs])
    if not kept or broadcast_shapes(label, *[t.shape for t in kept]) != shape:
        # an input the expression no longer uses (x - x, 0 * x, where(c, a, a)) still sets the
        # result's shape: keep the dropped ones as unused arguments
        for t in inputs:
            if not any(t is k for k in kept):
                kept.append(t)
    if expr == A[0] and len(kept) == 1 and kept[0].dtype == dtype:
        return kept[0]
    if dout is not None and len(kept) == 1:
        return make("ew", kept, expr=expr, label=label, dtype=dtype, dout=dout)
    if dexpr is not None:
        dexpr = _renumber_derivatives(dexpr, subs, len(kept))
        return make("ew", kept, expr=expr, label=label, dtype=dtype, dexpr=dexpr)
    return make("ew", kept, expr=expr, label=label, dtype=dtype)


# -- operand handling ------------------------------------------------------------------------

def _literal(v):
    if isinstance(v, sp.Basic):  # a parameter passed as a tensor operand (_apply)
        return v
    if isinstance(v, (bool, np.bool_)):
        return sp.Integer(int(v))
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    return sp.Float(float(v), 17)


def _folding(a, float_op: bool = True) -> bool:
    """Whether a scalar would let SymPy fold its expression at build time: ``0.0 * x`` is
    0 (IEEE: NaN for x = inf or NaN), ``nan * x`` is a constant NaN (its gradient then 0, not
    NaN).  Such scalars become constant tensors, which SymPy keeps symbolic.  In an op on float
    tensors (``float_op``) an integer zero folds alike (``x * 0``, ``0 / x``: 0 for x = 0)."""
    v = a.item() if isinstance(a, (np.ndarray, np.generic)) else a
    if isinstance(v, float):
        return v == 0.0 or not math.isfinite(v)
    return float_op and isinstance(v, int) and v == 0


def _prepare(op: str, args) -> tuple[list, list[Tensor], list]:
    """Split the operands of ``op`` into sympy atoms (symbols for tensors, literals for Python
    scalars), the tensor inputs, and the dtypes taking part in promotion."""
    from .core import constant  # late import: core builds on this module's ew()

    atoms, inputs, dtypes = [], [], []
    tensor_dtypes = [a.dtype for a in args if isinstance(a, Tensor)]
    float_like = promote(op, *tensor_dtypes) if tensor_dtypes else "float32"
    for a in args:
        if isinstance(a, Tensor):
            atoms.append(A[len(inputs)])
            inputs.append(a)
            dtypes.append(a.dtype)
        elif (isinstance(a, Scalar) or (isinstance(a, np.ndarray) and a.ndim == 0
                                        and not tensor_dtypes == [])) \
                and not _folding(a, is_float(float_like) and bool(tensor_dtypes)):
            v = a.item() if isinstance(a, np.ndarray) else a
            atoms.append(_literal(v))
            if isinstance(v, float) and not is_float(float_like):
                dtypes.append("float32")  # a float literal makes an int op float
            elif (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                  and all(d == "bool" for d in tensor_dtypes)):
                dtypes.append("int64")  # and an int literal a bool op int64, as in PyTorch
        else:
            arr = np.asarray(a)
            if arr.dtype == object:
                raise TypeError(f"{op}: cannot use {type(a).__name__} as a tensor")
            # numpy arrays are weakly typed: they take the float dtype of the symbolic operands
            # (a float scalar kept as a tensor by _folding makes an int op float32, as a literal)
            if arr.dtype.kind == "f" and (is_float(float_like) or arr.ndim == 0):
                arr = arr.astype(float_like if is_float(float_like) else "float32")
            elif arr.ndim == 0 and is_float(float_like):
                arr = arr.astype(float_like)  # an integer zero kept by _folding, as 0.0 is
            t = constant(arr)
            atoms.append(A[len(inputs)])
            inputs.append(t)
            dtypes.append(t.dtype)
    if not inputs:  # all operands were scalars: a constant
        vals = [np.asarray(a) for a in args]
        dtypes = [v.dtype for v in vals]
        atoms = [A[i] for i in range(len(vals))]
        inputs = [constant(v if v.dtype.kind != "f" else v.astype("float32")) for v in vals]
        dtypes = [t.dtype for t in inputs]
    return atoms, inputs, dtypes


# -- the table of named elementwise ops ------------------------------------------------------

@dataclass(frozen=True)
class ElementwiseSpec:
    """A named elementwise op: ``fn(*atoms, **params)`` returns its SymPy expression.

    result: "promote" (dtype of the operands), "bool" (comparisons), "float" (float operands
    required).  ``sample`` describes test inputs: the valid domain of each argument."""

    name: str
    arity: int
    fn: Callable
    result: str = "float"
    domain: tuple = ()  # per argument: "real", "positive", "unit" (0,1), "bool", "nonzero"
    params: tuple = ()  # example parameter dicts for the generated tests
    differentiable: bool = True
    dout: Callable | None = None  # derivative as a function of the output y (unary ops)
    grads: Callable | None = None  # fn's derivatives, one per argument (instead of SymPy's)
    # dtype kinds PyTorch refuses for this op ("b" bool, "u" unsigned), of the promoted operands
    rejects: str = ""


ELEMENTWISE: dict[str, ElementwiseSpec] = {}


def _apply(spec: ElementwiseSpec, args, params) -> Tensor:
    for k, v in params.items():
        # a numeric parameter is a number: float() read elu(t, "1") as alpha 1 and failed on a
        # tensor alpha with "float() argument must be ... not 'Tensor'", naming no op
        if isinstance(spec.params[0].get(k), (int, float)) and not (
                isinstance(v, (numbers.Real, np.bool_)) or isinstance(v, np.ndarray)
                and v.ndim == 0 and v.dtype.kind in "biuf"):
            raise TypeError(f"{spec.name}: {k} must be a real number, got {v!r}")
    # a zero parameter (leaky_relu's or elu's alpha = 0) would let SymPy fold alpha * x to the
    # constant 0, where IEEE arithmetic (and PyTorch) gives NaN at x = -inf and -0 for x < 0:
    # it becomes a constant tensor operand, which SymPy keeps symbolic (as _folding does for
    # the operands of binary ops); the op's function receives its symbol
    zeros = [k for k, v in params.items() if isinstance(v, (int, float, np.integer, np.floating))
             and not isinstance(v, (bool, np.bool_)) and v == 0]
    params = dict(params)
    n_args = len(args)
    args = list(args) + [float(params.pop(k)) for k in zeros]
    atoms, inputs, dtypes = _prepare(spec.name, args)
    kind = np.dtype(promote(spec.name, *dtypes)).kind
    if kind in spec.rejects:
        what = {"b": "bool", "u": "unsigned"}[kind]
        raise TypeError(f"{spec.name}: not supported on {what} tensors (as in PyTorch); cast "
                        f"them first, e.g. gc.cast(t, 'float32')")
    params.update(zip(zeros, atoms[n_args:]))
    atoms = atoms[:n_args]
    expr = spec.fn(*atoms, **params)
    if spec.result == "bool":
        dtype = "bool"
    else:
        dtype = promote(spec.name, *dtypes)
        if spec.result == "float" and not is_float(dtype):
            dtype = "float32"  # math on ints gives floats, as in PyTorch
        if np.dtype(dtype).kind in "iu":
            expr = _wrap_integer_literals(expr, dtype)
    dout = None
    if spec.dout is not None and len(inputs) == 1 and atoms[0] == A[0]:
        defaults = {k: p.default for k, p in inspect.signature(spec.fn).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        kwargs = {**defaults, **params}
        sig = inspect.signature(spec.dout).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values()):
            # only the op's own parameters: sp.sqrt's signature also has ``evaluate=None``
            kwargs = {k: v for k, v in kwargs.items() if k in sig}
        dout = spec.dout(A[0], **kwargs)
    dexpr = None
    if spec.grads is not None:
        # one derivative per tensor input (scalar operands are literals, not inputs)
        ds = spec.grads(*atoms, **params)
        dexpr = tuple(sp.sympify(d) for d, a in zip(ds, atoms) if a in A[:len(inputs)])
    return ew(expr, inputs, label=spec.name, dtype=dtype, dout=dout, dexpr=dexpr)


def _wrap_integer_literals(expr: sp.Expr, dtype) -> sp.Expr:
    """``expr`` of an integer op with its integer literals outside ``dtype``'s range wrapped
    into it (two's complement), as PyTorch converts such scalars: ``u8 + 300`` is ``u8 + 44``,
    ``maximum(u8, -1)`` is ``maximum(u8, 255)``, ``i64 - (-2**63)`` wraps (the numpy reference
    raised OverflowError, the C backend compared -1 as a signed number).  Sums and products
    of integers wrap the same way, so results do not change otherwise."""
    info = np.iinfo(dtype)
    span = 1 << info.bits

    def out_of_range(e):
        return isinstance(e, sp.Integer) and not info.min <= int(e) <= info.max

    def wrap(e):
        v = int(e) % span
        return sp.Integer(v - span if v > info.max else v)

    if not expr.has(sp.Integer) or not any(out_of_range(e) for e in sp.preorder_traversal(expr)):
        return expr
    return expr.replace(out_of_range, wrap)


_DEFAULT_NAMES = {1: ("t",), 2: ("a", "b"), 3: ("cond", "a", "b")}

# appended to every elementwise constructor's docstring
_COMMON_DOC = {
    1: "\n\nBuilds a symbolic node (computes nothing); ``t`` is a Tensor or a numpy/Python "
       "value.\nRaises TypeError for an operand dtype the op does not accept (as PyTorch).",
    2: "\n\nBuilds a symbolic node (computes nothing).  Operands are Tensors or numpy/Python "
       "values,\nbroadcast as in numpy; incompatible shapes raise ``gc.ShapeError`` (a "
       "ValueError)\nnaming the op and both shapes, an operand dtype the op does not accept a "
       "TypeError.",
    3: "\n\nBuilds a symbolic node (computes nothing).  Operands broadcast as in numpy; "
       "incompatible\nshapes raise ``gc.ShapeError`` (a ValueError) naming the op and the "
       "shapes.",
}


def _signature(fn, names, params) -> inspect.Signature:
    """The public signature: the tensor arguments ``names``, then the op's parameters (the keys
    of its example ``params``, defaults from ``fn``), all positional-or-keyword as in API.md
    (``leaky_relu(t, alpha=0.01)``)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    out = [inspect.Parameter(n, kind) for n in names]
    keys = list(dict.fromkeys(k for p in params for k in p))
    if keys:
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
        out += [inspect.Parameter(k, kind, default=defaults.get(k, inspect.Parameter.empty))
                for k in keys]
    return inspect.Signature(out)


def define(name: str, arity: int, result: str = "float", domain=None, params=((),),
           differentiable: bool = True, dout=None, names=None, grads=None, rejects="",
           doc=None):
    """Decorator registering a named elementwise op and creating its public constructor.

    ``doc``: the constructor's docstring (else ``fn``'s own, for a function written here:
    never SymPy's, whose docstrings describe SymPy objects).  ``names``: the tensor arguments'
    names (default t; a, b; cond, a, b).  ``grads``: a
    function of the same arguments returning the derivative per argument, where SymPy's
    derivative would not follow PyTorch.  ``rejects``: dtype kinds the op refuses with a
    TypeError, as PyTorch does ("b": bool operands, "u": unsigned)."""
    def wrap(fn):
        spec = ElementwiseSpec(name, arity, fn, result, tuple(domain or ("real",) * arity),
                               tuple(dict(p) for p in params), differentiable, dout, grads,
                               rejects)
        ELEMENTWISE[name] = spec
        tensor_names = tuple(names or _DEFAULT_NAMES[arity])
        sig = _signature(fn, tensor_names, spec.params)

        def op(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{name}{sig}: {e}") from None
            values = dict(bound.arguments)
            tensors = [values.pop(n) for n in tensor_names]
            return _apply(spec, tensors, values)

        op.__name__ = name
        own = getattr(fn, "__module__", "").startswith("graphc")
        op.__doc__ = ((doc or (fn.__doc__ if own else None) or f"Elementwise {name}.")
                      + _COMMON_DOC[arity])
        op.__signature__ = sig
        op.spec = spec
        return op
    return wrap


# arithmetic (numpy broadcasting, dtype promotion)
add = define("add", 2, "promote",
             doc="``a + b`` elementwise (numpy dtype promotion).")(lambda a, b: a + b)
sub = define("sub", 2, "promote", rejects="b",
             doc="``a - b`` elementwise (bool operands: TypeError, as PyTorch).")(
    lambda a, b: a - b)
mul = define("mul", 2, "promote",
             doc="``a * b`` elementwise (numpy dtype promotion).")(lambda a, b: a * b)
div = define("div", 2, "float", ("real", "nonzero"),
             doc="``a / b`` elementwise, true division: integer operands give float32.")(
    lambda a, b: a / b)
neg = define("neg", 1, "promote", rejects="b", doc="``-t`` elementwise.")(lambda a: -a)
def _pow_grads(a, b):
    # PyTorch: d/da = b a^(b-1), 0 where b == 0 (SymPy's b a^b / a is 0/0 at a = 0);
    # d/db = a^b log(a), 0 where a == 0 and b >= 0 (else 0 * -inf)
    # (PowT: the powers in these derivatives differentiate by the same rules, as PyTorch's)
    return pow_derivatives(a, b)


_pow = define("pow", 2, "float", ("positive", "real"), grads=_pow_grads)(lambda a, b: a ** b)


def _kind(v) -> str:
    """The dtype kind ("b", "i", "u", "f", ...) of a pow operand: a Tensor, a Python or numpy
    scalar, or an array."""
    if isinstance(v, Tensor):
        return np.dtype(v.dtype).kind
    if isinstance(v, (bool, np.bool_)):
        return "b"
    if isinstance(v, (int, np.integer)):
        return "i"
    return np.asarray(v).dtype.kind


def _describe(v) -> str:
    from ..ir import format_shape
    if isinstance(v, Tensor):
        return f"{v.dtype} tensor of shape {format_shape(v.shape)}"
    arr = np.asarray(v)
    return f"{arr.dtype} value {arr.item()}" if arr.ndim == 0 else (
        f"{arr.dtype} array of shape {format_shape(arr.shape)}")


def _integer_exponent_tensor(a, b) -> bool:
    """Whether ``a ** b`` is an integer (or bool) base to an integer (or bool) tensor exponent:
    a Tensor, a constant or a numpy array, not a Python or numpy scalar."""
    return (_kind(a) in "biu" and _kind(b) in "biu"
            and not isinstance(b, (bool, int, np.bool_, np.integer)))


def _check_negative_exponent(a, b) -> None:
    """Refuse what numpy and PyTorch refuse: an integer base to a known negative integer
    power (a literal, a numpy scalar or array, a constant tensor)."""
    if _kind(a) not in "biu" or _kind(b) not in "biu":
        return
    if isinstance(b, Tensor) and b.op == "constant":
        b = b.attrs["value"]  # a known exponent: decided by its values, as a literal
    if not isinstance(b, Tensor) and np.any(np.asarray(b) < 0):
        raise ValueError(
            f"pow: integers to negative integer powers are not allowed (as in numpy and "
            f"PyTorch): base {_describe(a)}, exponent {_describe(b)}; cast the base to a "
            f"float dtype for a float power, e.g. gc.cast(a, 'float32') ** b")


def _integer_power(a, b) -> Tensor:
    """``a ** b`` of integer (or bool) operands, b a tensor: an integer result of the promoted
    dtype (symbolic.IPow), as PyTorch computes it."""
    atoms, inputs, dtypes = _prepare("pow", [a, b])
    dtype = promote("pow", *dtypes)
    if dtype == "bool":
        raise TypeError(f"pow: a bool base ({_describe(a)}) to a bool exponent "
                        f"({_describe(b)}) is not supported (PyTorch has no bool pow); cast "
                        f"one of them to an integer dtype, e.g. gc.cast(b, 'int64')")
    if "uint64" in [np.dtype(d).name for d in dtypes] or np.dtype(dtype).kind == "f":
        # graphc promotes uint64 with a signed integer to float64, and its kernels compute
        # this power in signed 64-bit integers (PyTorch has no uint16/32/64 pow)
        raise TypeError(f"pow: a uint64 operand of an integer power ({_describe(a)} ** "
                        f"{_describe(b)}) is not supported; cast it to int64 (or a float "
                        f"dtype) first")
    expr = _wrap_integer_literals(IPow(*atoms), dtype)
    return ew(expr, inputs, label="pow", dtype=dtype)


def _integer_scalar_power(a: Tensor, e: int) -> Tensor:
    """``a ** e`` of an integer (or bool) tensor ``a`` and a non-negative Python or numpy int
    ``e``, as PyTorch: the base's dtype (int64 for a bool base), wrapping around.  Up to 64 an
    exact product (SymPy expands it), above that symbolic.IPow, whose kernels square in 64-bit
    arithmetic: its low bits are the power modulo 2**8, 2**16, 2**32 of a narrower base (the
    exponent literal is not wrapped into the base's dtype: int8 ** 1000 is not ** -24)."""
    if e > np.iinfo(np.int64).max:
        raise ValueError(f"pow: the integer exponent {e} of {_describe(a)} does not fit in "
                         f"int64 (the integer power's exponent type, as PyTorch's); use an "
                         f"exponent below 2**63, or cast the base to a float dtype")
    if np.dtype(a.dtype).kind == "b":
        return ew(IPow(A[0], sp.Integer(e)), [a], label="pow", dtype="int64")
    if e <= 64:
        return ew(A[0] ** e, [a], label="pow", dtype=a.dtype)
    return ew(IPow(A[0], sp.Integer(e)), [a], label="pow", dtype=a.dtype)


def pow(a, b):  # noqa: A001 - the op's public name
    """``a ** b``; an integer tensor to a non-negative integer power stays integer (as in
    PyTorch and numpy: ``x ** 2`` of int64 ``x`` is int64, exact), else floats.

    An integer (or bool) base to an integer (or bool) *tensor* exponent (a Tensor, a
    constant, a numpy array) gives an integer result as in PyTorch: its dtype is the operands'
    promoted one (int8 ** int32 is int32, int8 ** uint8 int16, bool ** int8 int8, a Python
    int base takes the exponent's dtype), computed by squaring with wrap-around in that dtype
    (int64 3 ** 40 wraps, as PyTorch's), and a negative exponent element gives 1 where the
    base is 1, +-1 (by the exponent's parity) where it is -1, else 0 (a base 0 included), as
    PyTorch does (numpy raises there).  The result has no gradient (integers are not
    differentiable).  A bool base to a bool exponent is a TypeError (PyTorch has no bool
    pow), and so is a uint64 operand.

    A negative integer power that is known when the graph is built (a Python or numpy int,
    a numpy array or a constant holding a negative value) of an integer (or bool) base is a
    ValueError, as numpy's and PyTorch's "Integers to negative integer powers are not
    allowed" (``x ** -1`` of int64 ``x`` used to give a float); cast the base to a float
    dtype for a float power (``gc.cast(x, "float32") ** -1``).  An integer base to a float
    exponent or a float base to an integer one gives floats.

    An integer tensor to a non-negative Python or numpy int keeps the base's dtype at any
    exponent, wrapping around as PyTorch (int32 ``3 ** 100`` is -818408495, uint8
    ``3 ** 100`` 209), and a bool tensor to one gives int64 (``b ** 0`` is 1, ``b ** e`` is
    ``b`` as 0/1 for e >= 1), as PyTorch.  PyTorch refuses an exponent outside the base's
    dtype (int8 ``x ** 128``: "value cannot be converted"); graphc computes it (the power
    modulo 2**8 there).  An exponent of 2**63 or more is a ValueError naming it (PyTorch's
    exponent is an int64 too).  A Python (or numpy) bool exponent is 1 or 0 and keeps the
    base's dtype, a bool base included (``b ** True`` is ``b``, ``b ** False`` all True), as
    PyTorch."""
    _check_negative_exponent(a, b)
    if _integer_exponent_tensor(a, b):
        return _integer_power(a, b)
    if isinstance(a, Tensor) and np.dtype(a.dtype).kind in "biu" and isinstance(
            b, (int, np.integer, np.bool_)):
        if np.dtype(a.dtype).kind == "b" and isinstance(b, (bool, np.bool_)):
            # a bool exponent is PyTorch's 1 or 0, and a bool base stays bool: b ** True is
            # b, b ** False all True (an integer base takes the int path: its dtype is kept)
            return ew(A[0] if b else sp.Integer(1), [a], label="pow", dtype="bool")
        return _integer_scalar_power(a, int(b))

    def floating(t):
        return (np.dtype(t.dtype).kind == "f" if isinstance(t, Tensor)
                else isinstance(t, (float, np.floating)))

    if not (floating(a) or floating(b)):
        # integer operands left here (a scalar base to a scalar exponent): float32, computed
        # as the compiled backends do
        a, b = (cast(t, "float32") if isinstance(t, Tensor) else t for t in (a, b))
    if (isinstance(b, Tensor) and (isinstance(a, Scalar) or isinstance(a, np.ndarray)
                                   and a.ndim == 0 and a.dtype.kind in "iuf") and a < 0):
        # a negative literal base: SymPy evaluates the log in d/db (a^b log a) to the complex
        # log|a| + i pi (the numpy reference dropped the i pi, the C printer recursed forever);
        # as a constant tensor its log stays symbolic and is NaN, as in PyTorch
        from .core import constant  # late import: core builds on this module's ew()
        a = constant(np.asarray(a), dtype=b.dtype if is_float(b.dtype) else "float32")
    return _pow(a, b)


pow.__signature__ = _pow.__signature__
pow.spec = _pow.spec  # the registry entry, as for the other named ops

# elementwise math
exp = define("exp", 1, dout=lambda y: y, doc="``e ** t`` elementwise.")(sp.exp)
log = define("log", 1, domain=("positive",),
             doc="Natural logarithm elementwise (``-inf`` at 0, NaN below, as PyTorch).")(sp.log)
sqrt = define("sqrt", 1, domain=("positive",), dout=lambda y: 1 / (2 * y),
              doc="Square root elementwise (NaN for negative values).")(sp.sqrt)
# exp(x) - 1 and log(1 + x), exact near 0 where the plain forms cancel (PyTorch's expm1, log1p)
expm1 = define("expm1", 1, dout=lambda y: y + 1,
               doc="``exp(t) - 1`` elementwise, accurate near 0 (``torch.expm1``).")(_Expm1)
log1p = define("log1p", 1, domain=("positive",),
               doc="``log(1 + t)`` elementwise, accurate near 0 (``torch.log1p``).")(_Log1p)
abs = define("abs", 1, "promote", doc="``|t|`` elementwise (an integer dtype is kept).")(sp.Abs)
cos = define("cos", 1, doc="Cosine elementwise (radians).")(sp.cos)
sin = define("sin", 1, doc="Sine elementwise (radians).")(sp.sin)
square = define("square", 1, "promote",
                doc="``t * t`` elementwise (an integer dtype is kept).")(lambda a: a ** 2)
maximum = define("maximum", 2, "promote", doc=(
    "Elementwise maximum of ``a`` and ``b``; at ties the gradient is split evenly (as "
    "PyTorch).\nA NaN operand gives NaN."))(Max2)
minimum = define("minimum", 2, "promote", doc=(
    "Elementwise minimum of ``a`` and ``b``; at ties the gradient is split evenly (as "
    "PyTorch).\nA NaN operand gives NaN."))(Min2)


@define("where", 3, "promote", ("bool", "real", "real"), names=("cond", "a", "b"))
def where(c, a, b):
    """``a`` where ``cond`` is true (nonzero), else ``b``, elementwise."""
    return sp.Piecewise((a, sp.Ne(c, 0)), (b, True))


# comparisons: boolean results, no gradient
greater = define("greater", 2, "bool", differentiable=False,
                 doc="``a > b`` elementwise: a bool tensor, no gradient.")(
    lambda a, b: sp.Piecewise((1, a > b), (0, True)))
less = define("less", 2, "bool", differentiable=False,
              doc="``a < b`` elementwise: a bool tensor, no gradient.")(
    lambda a, b: sp.Piecewise((1, a < b), (0, True)))
equal = define("equal", 2, "bool", differentiable=False,
               doc="``a == b`` elementwise: a bool tensor, no gradient.")(
    lambda a, b: sp.Piecewise((1, sp.Eq(a, b)), (0, True)))

# activations (derivative 0 at kinks, as PyTorch)
sigmoid = define("sigmoid", 1, dout=lambda y: y * (1 - y))(Sigmoid)
tanh = define("tanh", 1, dout=lambda y: 1 - y ** 2,
              doc="Hyperbolic tangent elementwise.")(sp.tanh)
# x <= 0 as the test: relu(nan) is nan with gradient 1, as in PyTorch; relu, hard_tanh and
# step of an integer tensor keep its dtype (PyTorch's relu, hardtanh and heaviside), relu and
# hard_tanh refuse bools, hard_tanh unsigned types (its -1 limit)
relu = define("relu", 1, "promote", rejects="b",
              doc="``max(t, 0)`` elementwise (an integer dtype is kept; gradient 0 at 0).",
              dout=lambda y: sp.Piecewise((0, y <= 0), (1, True)))(
    lambda x: sp.Piecewise((0, x <= 0), (x, True)))


def _positive_slope_dout(slope_of_y):
    """Output-form derivative valid when the negative branch keeps the sign (alpha > 0)."""
    def dout(y, alpha, **_):
        return slope_of_y(y, alpha) if float(alpha) > 0 else None
    return dout


# leaky_relu and elu test x <= 0 in the forward (NaN takes the identity branch: with alpha = 0
# the negative branch folds to the constant 0, which turned NaN into 0; PyTorch gives NaN) and
# x > 0 / x <= 0 in the derivative as PyTorch's backward does (leaky_relu: alpha at NaN; elu:
# 1 at NaN), also where the output form does not apply (alpha <= 0)
leaky_relu = define("leaky_relu", 1, params=({"alpha": 0.01}, {"alpha": 0.2}),
                    doc="``t`` where ``t > 0``, else ``alpha * t`` (a number; default 0.01).",
                    dout=_positive_slope_dout(lambda y, a: sp.Piecewise(
                        (1, y > 0), (_literal(a), True))),
                    grads=lambda x, alpha=0.01: (sp.Piecewise((1, x > 0),
                                                              (_literal(alpha), True)),))(
    lambda x, alpha=0.01: sp.Piecewise((_literal(alpha) * x, x <= 0), (x, True)))
_prelu = define("prelu", 2, domain=("real", "real"), names=("t", "alpha"))(
    lambda x, a: sp.Piecewise((x, x > 0), (a * x, True)))


def prelu(t, alpha):
    """``t`` where positive, else ``alpha * t``, as ``torch.nn.functional.prelu``: a 1-D
    ``alpha`` of C > 1 values holds one slope per channel, axis 1 of ``t`` (the last axis of a
    2-D ``t``); a scalar or one-element ``alpha`` applies everywhere; an ``alpha`` of any other
    shape broadcasts numpy-style.

    At ``t == 0`` (either sign) the negative branch applies to the derivatives, as in
    PyTorch's backward: d/dt is ``alpha``, d/dalpha is ``t``.  The mixed second derivative
    d2/dt dalpha there is therefore 1 (the derivative in ``alpha`` of d/dt = ``alpha``, and of
    d/dalpha = ``t`` in ``t`` on that branch), in either order, on every backend.  PyTorch's
    double backward gives 0 there (it tests ``t >= 0``, unlike its first derivative, so it
    disagrees with the derivative of its own ``alpha`` gradient); a central finite
    difference gives 0.5, the mean of the two one-sided derivatives 1 and 0."""
    return _prelu(t, _prelu_channels(t, alpha))


prelu.spec = _prelu.spec  # the registry entry, as for the other named ops


def _prelu_channels(t, alpha):
    """``alpha`` reshaped to (C, 1, ..., 1) so that it lines up with axis 1 of ``t``
    (numpy broadcasting alone would line a (C,) alpha up with the last axis)."""
    from ..ir import format_shape
    from .core import reshape  # late import: core builds on this module's ew()

    t_shape = t.shape if isinstance(t, Tensor) else np.shape(t)
    a_shape = alpha.shape if isinstance(alpha, Tensor) else np.shape(alpha)
    if len(t_shape) == 0 and a_shape == (1,):
        # a one-element alpha (nn.PReLU's) of a 0-d t: PyTorch's result is 0-d, not (1,)
        return reshape(alpha, ()) if isinstance(alpha, Tensor) else np.reshape(alpha, ())
    if len(t_shape) < 2 or len(a_shape) != 1 or a_shape[0] in (1, None):
        return alpha
    channels = t_shape[1]
    if channels is not None and a_shape[0] != channels:
        raise ShapeError(f"prelu: alpha of shape {format_shape(a_shape)} needs one value per "
                         f"channel (axis 1) of t of shape {format_shape(t_shape)}")
    if len(t_shape) == 2:
        return alpha
    channel_shape = (a_shape[0],) + (1,) * (len(t_shape) - 2)
    if isinstance(alpha, Tensor):
        return reshape(alpha, channel_shape)
    return np.reshape(np.asarray(alpha), channel_shape)


# the derivatives test y <= 0 / x <= 0 (not > 0): at NaN the gradient passes through (slope
# 1), as in PyTorch's elu_backward; the slope alpha e^x at 0 is a piece of its own, a constant,
# so that the second derivative there is 0, as in PyTorch's elu_double_backward (x < 0)
elu = define("elu", 1, params=({"alpha": 1.0}, {"alpha": 0.5}),
             doc="ELU: ``t`` where ``t > 0``, else ``alpha * (exp(t) - 1)`` (default 1.0).",
             dout=_positive_slope_dout(lambda y, a: sp.Piecewise(
                 (y + _literal(a), y < 0), (_literal(a), y <= 0), (1, True))),
             grads=lambda x, alpha=1.0: (sp.Piecewise((_literal(alpha) * sp.exp(x), x < 0),
                                                      (_literal(alpha), x <= 0),
                                                      (1, True)),))(
    lambda x, alpha=1.0: sp.Piecewise((_literal(alpha) * _Expm1(x), x <= 0), (x, True)))
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
selu = define("selu", 1, doc="SELU: ``scale * (t if t > 0 else alpha * (exp(t) - 1))`` with "
                             "PyTorch's\nconstants alpha = 1.6733, scale = 1.0507.",
              dout=lambda y: sp.Piecewise(
    (y + _literal(_SELU_SCALE * _SELU_ALPHA), y < 0),
    (_literal(_SELU_SCALE * _SELU_ALPHA), y <= 0), (_literal(_SELU_SCALE), True)))(
    lambda x: _literal(_SELU_SCALE) * sp.Piecewise(
        (x, x > 0), (_literal(_SELU_ALPHA) * _Expm1(x), True)))
softplus = define("softplus", 1, dout=lambda y: -_Expm1(-y))(Softplus)
# (the derivative tests y <= -1 / y >= 1, as PyTorch's hardtanh_backward: 1 at NaN)
hard_tanh = define("hard_tanh", 1, "promote", rejects="bu",
                   doc="``t`` clipped to [-1, 1] elementwise (``torch.nn.functional.hardtanh``)."
                       "\nAt NaN the result is NaN and the gradient passes the incoming one "
                       "through\n(slope 1): NaN fails both limit tests, so it takes the "
                       "identity branch, whose\nderivative is 1 (as relu's, elu's), on every "
                       "backend and tensor length.  PyTorch's\nCPU kernel gives 1 in its "
                       "scalar loop but 0 in its vectorized one, so its answer\ndepends on "
                       "the tensor's length (0 for the elements its vector loop covers: from 16 "
                       "elements\non with AVX-512).",
                   dout=lambda y: sp.Piecewise(
    (0, sp.Or(y <= -1, y >= 1)), (1, True)))(
    lambda x: sp.Piecewise((-1, x <= -1), (1, x >= 1), (x, True)))
softsign = define("softsign", 1, doc="``t / (1 + |t|)`` elementwise.")(
    lambda x: x / (1 + sp.Abs(x)))
silu = define("silu", 1, doc="SiLU (= swish): ``t * sigmoid(t)`` elementwise "
                             "(``torch.nn.functional.silu``).")(lambda x: x * Sigmoid(x))
swish = silu
mish = define("mish", 1, doc="Mish: ``t * tanh(softplus(t))`` elementwise.")(
    lambda x: x * sp.tanh(Softplus(x)))
step = define("step", 1, "promote", differentiable=False,
              doc="Heaviside step: 1 where ``t > 0``, else 0 (keeps the dtype); gradient 0.")(
    lambda x: sp.Piecewise((1, x > 0), (0, True)))


def _gelu(x, approximate="none"):
    if approximate == "none":
        return x / 2 * (1 + sp.erf(x / sp.sqrt(2)))
    if approximate == "tanh":
        return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + _literal(0.044715) * x ** 3)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


gelu = define("gelu", 1, params=({"approximate": "none"}, {"approximate": "tanh"}), doc=(
    "GELU: ``t * Phi(t)`` (Phi the standard normal CDF) elementwise; ``approximate=\"tanh\"``\n"
    "uses the tanh form, as ``torch.nn.functional.gelu``.  Another ``approximate`` is a "
    "ValueError."))(_gelu)

# losses written elementwise (stable forms; reductions are applied by graphc.ops.nn)
def _bce_grads(p, t):
    # PyTorch's: d/dp = (p - t) / max(p (1 - p), 1e-12) (no 0 * inf NaN at p = 0 or 1),
    # d/dt = log(1 - p) - log(p) (+-inf there)
    return ((p - t) / Max2(p * (1 - p), _literal(1e-12)), _Log1p(-p) - sp.log(p))


binary_cross_entropy_elementwise = define(
    "binary_cross_entropy", 2, domain=("unit", "unit"), names=("prob", "target"),
    grads=_bce_grads)(
    lambda p, t: -(t * Max2(sp.log(p), -100) + (1 - t) * Max2(_Log1p(-p), -100)))
# PyTorch's form (1 - t) x + softplus(-x) (= softplus(x) - x t), so that infinite logits give
# its values: x = inf, t = 0 is inf (softplus(x) - x t gave inf - inf * 0 = NaN), x = -inf,
# t > 0 NaN; the derivatives are PyTorch's sigmoid(x) - t and -x (no cancellation)
bce_with_logits_elementwise = define(
    "binary_cross_entropy_with_logits", 2, domain=("real", "unit"),
    names=("logits", "target"), grads=lambda x, t: (Sigmoid(x) - t, -x))(
    lambda x, t: (1 - t) * x + Softplus(-x))


def cast(t: Tensor, dtype) -> Tensor:
    """Convert ``t`` to ``dtype`` (bool -> 0/1)."""
    return ew(A[0], [t], label="cast", dtype=dtype)
