"""Print elementwise SymPy expressions as C-family scalar code (C, CUDA and OpenCL alike).

Math functions are printed with graphc's portable names (``gc_expf`` ...), which
``kernels/gc_runtime.h`` maps to <math.h> and ``kernels/gc_dialect.h`` to CUDA/OpenCL.  Rationals
and constants such as pi are folded to float literals first (no ``M_PI``: NVRTC may lack it),
small integer powers become products, and common subexpressions are hoisted with ``sympy.cse``.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.cfunctions import expm1
from sympy.printing.c import C99CodePrinter

from ..symbolic import A

_CUSTOM = {"Sigmoid": "gc_sigmoid", "Softplus": "gc_softplus", "Max2": "gc_max2",
           "Min2": "gc_min2"}
_MATH = ("exp", "log", "sqrt", "fabs", "tanh", "pow", "erf", "log1p", "expm1", "cos", "sin",
         "fmax", "fmin", "floor")


class _Printer(C99CodePrinter):
    def __init__(self, dtype: str, integer: bool = False, unsigned: bool = False):
        self.single = dtype == "float32"
        # integer kernels compute in 64-bit integers: |x|, max, min and sign must stay
        # integer operations (through fabs/gc_max2 in double, int64 values above 2**53 lost
        # their low bits; OpenCL rejects fabs of a long as ambiguous)
        self.integer = integer
        self.unsigned = unsigned
        suffix = "f" if self.single else ""
        super().__init__(settings={
            "type_aliases": {real: float32 if self.single else float64},
            "user_functions": {k: v + suffix for k, v in _CUSTOM.items()},
        })

    def _print_Pow(self, expr):
        base, e = expr.args
        if e == 1:  # x**1, which cse leaves in expressions rebuilt unevaluated (render_expr)
            return f"({self._print(base)})"
        if self.integer and e.is_Integer and 1 < int(e) <= 64:
            # integer kernels: an exact product (pow() would go through double)
            return "(" + "*".join([f"({self._print(base)})"] * int(e)) + ")"
        if e.is_Integer and 1 < abs(int(e)) <= 4:
            prod = "(" + "*".join([f"({self._print(base)})"] * abs(int(e))) + ")"
            return prod if e > 0 else f"{self._print(sp.Float(1.0))}/({prod})"
        return super()._print_Pow(expr)

    def _print_PowT(self, expr):
        return self._print_Pow(sp.Pow(*expr.args, evaluate=False))

    def _print_IPow(self, expr):
        # integer a ** b (symbolic.IPow): gc_math.h's exponentiation by squaring, in 64 bits
        a, b = (self._print(e) for e in expr.args)
        return f"gc_ipow((gc_i64)({a}), (gc_i64)({b}))"

    def _print_Integer(self, expr):
        if self.unsigned and expr.p < 0:
            # a uint64 kernel (compute_type): only comparisons keep negative literals (integer
            # results wrap theirs, elementwise._wrap_integer_literals); as an unsigned literal
            # x > -1 would be false.  Compared as a float (no double: GPUs without fp64), every
            # unsigned value is above it
            return f"({expr.p}.0f)"
        if not self.integer and abs(expr.p) >= 1 << 63:
            # no C integer literal holds it (gcc wrapped 10**30 to 5e18, 2**70 to 0): a float
            # kernel reads it as the floating value numpy computes with
            return self._print(sp.Float(expr.p, 17))
        return super()._print_Integer(expr)

    def _print__Expm1(self, expr):
        return f"expm1{'f' if self.single else ''}({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        if self.integer:
            x = self._print(expr.args[0])
            return f"((({x}) > 0) - (({x}) < 0))"
        return f"gc_sign{'f' if self.single else ''}({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        if self.integer:
            x = self._print(expr.args[0])
            return f"(({x}) < 0 ? -({x}) : ({x}))"
        return super()._print_Abs(expr)

    def _print_Max2(self, expr):
        if self.integer:
            a, b = (self._print(e) for e in expr.args)
            return f"(({a}) > ({b}) ? ({a}) : ({b}))"
        return self._print_Function(expr)

    def _print_Min2(self, expr):
        if self.integer:
            a, b = (self._print(e) for e in expr.args)
            return f"(({a}) < ({b}) ? ({a}) : ({b}))"
        return self._print_Function(expr)

    def _print_Piecewise(self, expr):
        # one line: (c0 ? e0 : (c1 ? e1 : e2))
        out = self._print(expr.args[-1].expr)
        if expr.args[-1].cond != sp.true:
            out = "NAN"
        for e, c in reversed(expr.args[:-1]):
            out = f"(({self._print(c)}) ? ({self._print(e)}) : ({out}))"
        return out


def _fold_numbers(expr: sp.Expr) -> sp.Expr:
    """Replace non-integer exact numbers (1/3, pi, sqrt(2)) by float literals."""
    def is_foldable(e):
        return e.is_number and not e.is_Integer and not e.is_Float and not e.is_Boolean \
            and not isinstance(e, (sp.core.relational.Relational,))
    return expr.replace(is_foldable, lambda e: sp.Float(sp.N(e, 17), 17))


class _Expm1(expm1):
    """expm1 that stays expm1: SymPy's expm1.eval turns expm1(x - 0.25) into
    0.7788*exp(x) - 1 whenever an expression is rebuilt (cse, substitution), which loses the
    precision expm1 is for (elu/selu of x - c near 0 came out 1e-7 instead of 0, on the wrong
    side of the kink)."""

    @classmethod
    def eval(cls, arg):
        return expm1.eval(arg) if arg.is_number else None


_MATH_RE = None


def _portable_names(code: str, single: bool) -> str:
    global _MATH_RE
    if _MATH_RE is None:
        names = "|".join(sorted(set(_MATH) | {m + "f" for m in _MATH}, key=len, reverse=True))
        _MATH_RE = re.compile(rf"(?<![\w.])({names})\(")
    return _MATH_RE.sub(lambda m: f"gc_{m.group(1)}(", code)


def render_expr(expr: sp.Expr, args: list[str], dtype: str, tmp_prefix: str = "t",
                ctype: str | None = None) -> tuple[list[str], str]:
    """C code for ``expr`` with A[i] replaced by the C expressions ``args[i]``.

    ``ctype``: the C type the expression computes in (default float/double after ``dtype``);
    an integer type (an all-integer kernel) keeps |x|, max, min, sign and the temporaries in
    integers.  Returns (statements declaring CSE temporaries, final expression)."""
    default = "float" if dtype == "float32" else "double"
    ctype = ctype or default
    printer = _Printer(dtype, integer=ctype not in ("float", "double"),
                       unsigned=ctype in ("uint64_t", "gc_u64"))
    syms = [sp.Symbol(f"__arg{i}") for i in range(len(args))]
    # rebuilding the expression (here and in cse) must not let SymPy simplify across the ops
    # that fusion composed: exp(log(x)) became x (-1 for x = -1, not NaN), exp(-x) * exp(x) 1
    with sp.evaluate(False):
        expr = _fold_numbers(sp.sympify(expr))
        if expr.has(expm1):
            expr = expr.replace(lambda e: type(e) is expm1, lambda e: _Expm1(e.args[0]))
        expr = expr.xreplace({A[i]: syms[i] for i in range(len(args))})
        temps, (reduced,) = sp.cse([expr], symbols=sp.numbered_symbols(tmp_prefix))
    names = {str(s): a for s, a in zip(syms, args)}

    def emit(e):
        code = _portable_names(printer.doprint(e), printer.single)
        return re.sub(r"__arg\d+", lambda m: f"({names[m.group(0)]})", code)

    # a temporary holding a condition (comparison, And/Or/Not; sympy.cse pulls out the shared
    # `x <= 0` of nested piecewise activations) is an int: OpenCL C rejects a float ?: condition
    stmts = [f"const {'int' if isinstance(val, _CONDITIONS) else ctype} {sym} = {emit(val)};"
             for sym, val in temps]
    return stmts, emit(reduced)


_CONDITIONS = (sp.core.relational.Relational, sp.logic.boolalg.BooleanFunction)
_INTEGER_NODES = (sp.Symbol, sp.Integer, sp.Add, sp.Mul, sp.Abs, sp.sign, sp.Piecewise,
                  sp.functions.elementary.piecewise.ExprCondPair, sp.core.relational.Relational,
                  sp.logic.boolalg.BooleanFunction, sp.logic.boolalg.BooleanAtom)


def _integer_valued(expr) -> bool:
    """Whether ``expr`` maps integers to integers with integer operations only (sums,
    products, non-negative integer powers, integer a ** b, |x|, max, min, sign, comparisons,
    Piecewise)."""
    from ..symbolic import IPow, Max2, Min2
    for e in sp.preorder_traversal(expr):
        if isinstance(e, sp.Pow):
            if not (e.exp.is_Integer and e.exp >= 0):
                return False
        elif not isinstance(e, _INTEGER_NODES + (Max2, Min2, IPow)):
            return False
    return True


def render_plan(plan, loads: list[str], dtype: str, ctype: str, store, acc: str = "(acc)",
                local: str = "r") -> tuple[list[str], list[str]]:
    """Statements computing every output of a ``lower.FusedPlan`` into locals r0, r1, ...
    (every load happens here, before any store), and the value each output stores.
    ``local``: the locals' prefix instead of r (a kernel whose own names would clash).

    ``loads``: the C expression loading each operand; ``ctype``: the compute type;
    ``store(value, dtype)``: the conversion of a computed value to an output's dtype (an
    output read by a later one is read back through the same conversion, as from memory)."""
    stmts, values = [], []
    integer = ctype not in ("float", "double")
    for o, (expr, refs) in enumerate(plan.exprs):
        args = [loads[i] if kind == "in" else acc if kind == "acc"
                else f"(({ctype}){values[i]})" for kind, i in refs]
        ct = ctype
        if integer and not _integer_valued(sp.sympify(expr)):
            # integer operands and outputs around float intermediates (cast(a / 2 + 0.5) of
            # fused integer ops): compute in double, as numpy's float path does
            ct, args = "double", [f"((double){a})" for a in args]
        tmp = f"t{o}_" if local == "r" else f"{local}{o}_"
        body, value = render_expr(expr, args, dtype, tmp_prefix=tmp, ctype=ct)
        stmts += body + [f"const {ct} {local}{o} = {value};"]
        values.append(store(f"{local}{o}", plan.outputs[o][0].dtype))
    return stmts, values
