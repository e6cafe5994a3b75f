"""SymPy helpers: the custom functions elementwise ops are written with, and their numpy code.

Each elementwise op is one SymPy expression over the argument symbols ``A[0..]``; its numpy
reference and its derivative come from that one expression.  Functions whose textbook form
overflows or whose derivative needs a convention (kinks) are custom ``sympy.Function`` classes
with an explicit ``fdiff``; every printer (numpy here, C/GPU in ``graphc.codegen``) maps them.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

# Argument symbols of elementwise expressions (real, so d|x|/dx = sign(x)).
A = sp.symbols("a0:256", real=True)


class Sigmoid(sp.Function):
    """Logistic sigmoid, evaluated stably (no overflow for large |x|)."""

    nargs = 1

    def fdiff(self, argindex=1):
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class Softplus(sp.Function):
    """log(1 + exp(x)) in the stable form max(x, 0) + log1p(exp(-|x|))."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])


class Max2(sp.Function):
    """Elementwise maximum; at ties the gradient is split evenly (as PyTorch does).  The
    derivative is 0 only where the other argument is larger, so a NaN operand passes the
    gradient to both (PyTorch masks with ``a < b``, which is false for NaN)."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_number and b.is_number:
            return sp.Max(a, b)

    def fdiff(self, argindex=1):
        a, b = self.args if argindex == 1 else self.args[::-1]
        return sp.Piecewise((0, a < b), (sp.S.Half, sp.Eq(a, b)), (1, True))


class Min2(sp.Function):
    """Elementwise minimum; ties split the gradient evenly; NaN operands as in ``Max2``."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_number and b.is_number:
            return sp.Min(a, b)

    def fdiff(self, argindex=1):
        a, b = self.args if argindex == 1 else self.args[::-1]
        return sp.Piecewise((0, a > b), (sp.S.Half, sp.Eq(a, b)), (1, True))


class PowT(sp.Function):
    """``a ** b`` in the derivatives of pow with a tensor exponent, differentiated with
    PyTorch's rules at every order: d/da = b a^(b-1), 0 where b == 0, and d/db = a^b log a, 0
    where a == 0 and b >= 0, the powers inside again PowT.  SymPy's own derivative of
    a^(b-1) is (b-1) a^(b-1) / a, 0/0 = NaN at a = 0 (the second derivative of x^b at x = 0
    was NaN for b = 1, 2, 3, where PyTorch gives 0, 2, 0).  With a numeric exponent it is
    the plain power."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if b.is_number:
            return a ** b

    def fdiff(self, argindex=1):
        return pow_derivatives(*self.args)[argindex - 1]


def pow_derivatives(a, b):
    """(d/da, d/db) of a^b by PyTorch's rules (pow_backward_self, pow_backward_exponent)."""
    return (sp.Piecewise((0, sp.Eq(b, 0)), (b * PowT(a, b - 1), True)),
            sp.Piecewise((0, sp.And(sp.Eq(a, 0), b >= 0)), (PowT(a, b) * sp.log(a), True)))


class IPow(sp.Function):
    """``a ** b`` of integer (or bool) operands with an integer result, as PyTorch's integer
    pow: exponentiation by squaring, wrapping around in the result's integer type; a negative
    exponent gives 1 where a == 1, (-1)**b where a == -1, else 0 (a == 0 included).  The
    kernels (``gc_ipow`` in kernels/gc_math.h) and the numpy reference (``_np_ipow``) compute
    it in unsigned 64-bit arithmetic, whose low bits are the wrapped result of every narrower
    type.  Integers have no gradient: its derivative is 0 (autodiff never asks for it)."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sp.S.Zero


CUSTOM_FUNCTIONS = (Sigmoid, Softplus, Max2, Min2, PowT, IPow)


def _np_sigmoid(x):
    x = np.asarray(x)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _np_softplus(x):
    return np.logaddexp(0, x).astype(np.result_type(x, np.float32), copy=False)


_erf = np.frompyfunc(math.erf, 1, 1)


def _np_erf(x):
    x = np.asarray(x)
    # np.asarray: on a 0-d input frompyfunc returns a bare Python float
    return np.asarray(_erf(x)).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def _np_sign(x):
    """sign with sign(NaN) = 0, as PyTorch's and the C backend's (the gradient of |x| at NaN)."""
    s = np.sign(x)
    return np.where(np.isnan(s), np.zeros_like(s), s) if s.dtype.kind == "f" else s


def _np_ipow(a, b):
    """IPow on numpy arrays (int64 result; the caller casts to the node's dtype, which wraps)."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    a, e = a.astype(np.int64), b.astype(np.int64)
    base = a.astype(np.uint64)  # two's complement bits: uint64 products wrap, no overflow
    r = np.ones(base.shape, np.uint64)
    k = np.where(e < 0, 0, e).astype(np.uint64)
    one = np.uint64(1)
    while k.any():
        r = np.where((k & one).astype(bool), r * base, r)
        base = base * base
        k = k >> one
    negative = np.where(a == 1, 1, np.where(a == -1, np.where(e & 1, -1, 1), 0))
    return np.where(e < 0, negative, r.astype(np.int64))


NUMPY_FUNCTIONS = {
    "Sigmoid": _np_sigmoid,
    "Softplus": _np_softplus,
    "Max2": np.maximum,
    "Min2": np.minimum,
    "PowT": np.power,
    "IPow": _np_ipow,
    "erf": _np_erf,
    "gc_sign": _np_sign,
}


class _NumPyPrinter(NumPyPrinter):
    """SymPy's numpy printer, with Piecewise as nested ``where``: its ``select(...,
    default=nan)`` computes in float64 whatever the branches' dtype, so an int64 ``where`` lost
    the low bits of values above 2**53."""

    def _print_sign(self, expr):
        return f"gc_sign({self._print(expr.args[0])})"

    # A negative integer literal prints whole, in parentheses: the Add printer turned a0 + (-N)
    # into a0 - N, and N is outside an integer dtype whose minimum is -N (int8 x - 128 raised
    # OverflowError under numpy's NEP 50 rules; x + (-128) is in range).
    def _print_Integer(self, expr):
        return f"({expr.p})" if expr.p < 0 else str(expr.p)

    # x**0.5 and x**-0.5 through sqrt, as the C printer (and PyTorch's pow: sqrt, rsqrt) compute
    # them: at x = -0.0 numpy's power gave +0.0 and +inf, the compiled backends -0.0 and -inf
    def _print_Pow(self, expr, rational=False):
        if expr.exp.is_Float and abs(float(expr.exp)) == 0.5:
            root = f"{self._module_format(self._module + '.sqrt')}({self._print(expr.base)})"
            return root if expr.exp > 0 else f"(1/{root})"
        return super()._print_Pow(expr, rational)

    def _print_Mul(self, expr):
        c, _ = expr.as_coeff_Mul()
        s = super()._print_Mul(expr)
        return f"({s})" if c.is_Integer and c < -1 else s

    def _print_Piecewise(self, expr):
        if expr.args[-1].cond != sp.true:
            return super()._print_Piecewise(expr)
        where = self._module_format(self._module + ".where")
        out = self._print(expr.args[-1].expr)
        for e, c in reversed(expr.args[:-1]):
            out = f"{where}({self._print(c)}, {self._print(e)}, {out})"
        return out


@functools.lru_cache(maxsize=4096)
def numpy_function(expr: sp.Expr, nargs: int):
    """Compile ``expr`` (over A[:nargs]) to a numpy function of nargs arrays."""
    # (the settings lambdify gives its own printer: our functions are called by name)
    printer = _NumPyPrinter({"fully_qualified_modules": False, "inline": True,
                             "allow_unknown_functions": True,
                             "user_functions": {k: k for k in NUMPY_FUNCTIONS}})
    return sp.lambdify(A[:nargs], expr, modules=[NUMPY_FUNCTIONS, _numpy_namespace()],
                       printer=printer)


@functools.lru_cache(maxsize=None)
def _numpy_namespace() -> dict:
    """numpy's loaded names, for the printed functions.  (lambdify's modules="numpy" builds
    its namespace with ``from numpy import *``, whose lookups import numpy's lazy submodules,
    f2py and testing among them: 130 ms in the first graph of every process, a warm module
    load included.)"""
    return {k: v for k, v in vars(np).items() if not k.startswith("__")}


def free_args(expr: sp.Expr) -> set[int]:
    """Indices of the argument symbols ``expr`` uses."""
    return {A.index(s) for s in expr.free_symbols if s in A}
