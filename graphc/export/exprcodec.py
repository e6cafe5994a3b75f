"""SymPy expressions of ``ew`` nodes as JSON trees, and back, without evaluating any text.

``sympy.sympify``/``parse_expr``/``srepr``+``eval`` run Python code, so a graph file never
goes through them.  An expression is written as a tree of small JSON objects:

- ``{"sym": i}``: the argument symbol ``a<i>`` (``graphc.symbolic.A[i]``, real);
- ``{"int": "-12"}``, ``{"rat": ["1", "3"]}``: integers and rationals (decimal digits);
- ``{"float": [sign, "mantissa", exponent, bitcount], "prec": bits}``: a Float, exactly
  (mpmath's binary form: value = (-1)**sign * mantissa * 2**exponent);
- ``{"const": "pi"}``: one of a few named constants (pi, E, oo, -oo, nan, zoo, true, false);
- ``{"f": "Add", "args": [...]}``: an application of a whitelisted SymPy class.

Loading rebuilds only whitelisted classes, with ``evaluate=False`` (so nothing is computed and a
hostile ``Pow(10, 10**9)`` costs nothing), and caps the tree's depth, its size and the length of
every number, raising ``ValueError`` on anything else.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.functions.elementary.piecewise import ExprCondPair

from ..symbolic import A, IPow, Max2, Min2, PowT, Sigmoid, Softplus

MAX_DEPTH = 200          # nesting of the expression tree
MAX_NODES = 200_000      # sympy nodes in one expression
MAX_DIGITS = 400         # digits of one integer
MAX_FLOAT_EXP = 1 << 20  # |binary exponent| of a Float
MAX_PREC = 2000          # bits of precision of a Float

# name -> (class, min args, max args or None): what graphc's ops build and every backend prints
# (no Heaviside: C and OpenCL have none; no sinh/cosh: OpenCL printed sinhf)
FUNCTIONS = {
    "Add": (sp.Add, 1, None),
    "Mul": (sp.Mul, 1, None),
    "Pow": (sp.Pow, 2, 2),
    "exp": (sp.exp, 1, 1),
    "log": (sp.log, 1, 1),
    "Abs": (sp.Abs, 1, 1),
    "sign": (sp.sign, 1, 1),
    "sin": (sp.sin, 1, 1),
    "cos": (sp.cos, 1, 1),
    "tan": (sp.tan, 1, 1),
    "tanh": (sp.tanh, 1, 1),
    "erf": (sp.erf, 1, 1),
    "floor": (sp.floor, 1, 1),
    "ceiling": (sp.ceiling, 1, 1),
    "Max": (sp.Max, 1, None),
    "Min": (sp.Min, 1, None),
    "expm1": (expm1, 1, 1),
    "log1p": (log1p, 1, 1),
    "Sigmoid": (Sigmoid, 1, 1),
    "Softplus": (Softplus, 1, 1),
    "Max2": (Max2, 2, 2),
    "Min2": (Min2, 2, 2),
    "PowT": (PowT, 2, 2),
    "IPow": (IPow, 2, 2),
    "Piecewise": (sp.Piecewise, 1, None),
    "ExprCondPair": (ExprCondPair, 2, 2),
    "StrictGreaterThan": (sp.StrictGreaterThan, 2, 2),
    "StrictLessThan": (sp.StrictLessThan, 2, 2),
    "GreaterThan": (sp.GreaterThan, 2, 2),
    "LessThan": (sp.LessThan, 2, 2),
    "Equality": (sp.Equality, 2, 2),
    "Unequality": (sp.Unequality, 2, 2),
    "And": (sp.And, 2, None),
    "Or": (sp.Or, 2, None),
    "Not": (sp.Not, 1, 1),
}
_NAME_OF = {cls: name for name, (cls, _, _) in FUNCTIONS.items()}

CONSTANTS = {
    "pi": sp.pi, "E": sp.E, "oo": sp.oo, "-oo": -sp.oo, "nan": sp.nan, "zoo": sp.zoo,
    "true": sp.true, "false": sp.false,
}
_CONST_OF = {v: k for k, v in CONSTANTS.items()}

#: truth-valued expressions: the only conditions of a Piecewise and operands of And/Or/Not,
#: and never operands of arithmetic or of a comparison (a Symbol is a sympy Boolean too, but
#: graphc's argument symbols are numbers: a bool tensor is compared, ``Ne(a0, 0)``)
BOOLEAN = (sp.core.relational.Relational, sp.And, sp.Or, sp.Not,
           sp.logic.boolalg.BooleanAtom)
_LOGIC = {"And", "Or", "Not"}

_INT_RE = re.compile(r"-?[0-9]{1,%d}\Z" % MAX_DIGITS)
_SYMBOL_INDEX = {s: i for i, s in enumerate(A)}


# -- writing --------------------------------------------------------------------------------

def encode(expr) -> dict:
    """The JSON tree of ``expr`` (raises ``ValueError`` for anything outside the whitelist)."""
    return _encode(sp.sympify(expr) if not isinstance(expr, sp.Basic) else expr, 0)


def _encode(e, depth):
    if depth > MAX_DEPTH:
        raise ValueError(f"expression nested deeper than {MAX_DEPTH} levels")
    if e in _SYMBOL_INDEX and isinstance(e, sp.Symbol):
        return {"sym": _SYMBOL_INDEX[e]}
    if isinstance(e, sp.Integer):
        return {"int": str(int(e))}
    if isinstance(e, sp.Rational):
        return {"rat": [str(int(e.p)), str(int(e.q))]}
    if isinstance(e, sp.Float):
        sign, man, exp_, bc = e._mpf_
        return {"float": [int(sign), str(int(man)), int(exp_), int(bc)], "prec": int(e._prec)}
    for value, name in _CONST_OF.items():
        if e is value or (type(e) is type(value) and e == value):
            return {"const": name}
    name = _NAME_OF.get(type(e))
    if name is None:
        raise ValueError(f"cannot export expression node {type(e).__name__} ({e}); "
                         f"supported: {sorted(FUNCTIONS)}")
    return {"f": name, "args": [_encode(a, depth + 1) for a in e.args]}


# -- reading --------------------------------------------------------------------------------

def decode(tree) -> sp.Basic:
    """Rebuild an expression from its JSON tree; ``ValueError`` on anything unexpected."""
    budget = [MAX_NODES]
    try:
        out = _decode(tree, 0, budget)
    except ValueError:
        raise
    except RecursionError:
        raise ValueError("expression nested too deeply") from None
    except Exception as e:  # sympy rejecting a combination of args (TypeError, ...)
        raise ValueError(f"invalid expression: {type(e).__name__}: {e}") from None
    if isinstance(out, sp.logic.boolalg.BooleanAtom):
        # C has no true/false (the kernel failed to compile); the ops write 1 and 0
        raise ValueError(f"expression: the constant {out} is not a value")
    return out


def _int(s, what="integer") -> int:
    if not isinstance(s, str) or not _INT_RE.match(s):
        raise ValueError(f"expression: bad {what} {str(s)[:40]!r} (a string of at most "
                         f"{MAX_DIGITS} decimal digits)")
    return int(s)


def _small_int(v, lo, hi, what) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"expression: bad {what} {str(v)[:40]!r}")
    return v


MAX_CONST_POW_BITS = 4096  # |exponent| * bits of the base of a power of constants


def _check_const_pow(base, exponent) -> None:
    """A power of constants must be small: the numpy backend computes ``10**99999999`` in
    exact Python integers (it hangs) and ``2.0**5000`` raises OverflowError.  Powers with a
    symbol in the base are computed in floating point and are safe."""
    if base.free_symbols:
        return
    if not (isinstance(base, (sp.Number, sp.NumberSymbol)) and isinstance(exponent, sp.Number)):
        raise ValueError(f"expression: a power of constants must be number ** number, got "
                         f"{str(sp.Pow(base, exponent, evaluate=False))[:60]}")
    if isinstance(base, sp.Float):
        _, man, exp_, bc = base._mpf_
        bits = abs(exp_ + bc) + 1 if man else 1  # log2 |base|, roughly
    elif isinstance(base, sp.Rational):
        bits = max(abs(base.p).bit_length(), base.q.bit_length(), 1)
    else:
        bits = 2  # pi, E
    if not exponent.is_finite or abs(float(exponent)) * bits > MAX_CONST_POW_BITS:
        raise ValueError(f"expression: power of constants too large to evaluate "
                         f"({str(base)[:20]} ** {str(exponent)[:20]})")
    # and its value a finite real double: numpy computes it in Python numbers (0 ** -1:
    # ZeroDivisionError, e ** 2000: OverflowError, (-8) ** (1/3): a complex number cast to
    # real), the C printer recursed forever on the last and failed on zoo
    try:
        value = complex(sp.Pow(base, exponent, evaluate=False).evalf(20))
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        value = complex("nan")
    if value.imag != 0 or not abs(value.real) < 1.7976931348623157e308:
        raise ValueError(f"expression: power of constants without a finite real value "
                         f"({str(base)[:20]} ** {str(exponent)[:20]})")


def _check_truth_values(name, vals) -> None:
    """Conditions where conditions go, numbers elsewhere (numpy and C reject the rest only
    when the compiled function runs)."""
    if name == "Piecewise":
        return  # its arguments are ExprCondPairs (checked by the caller)
    if name == "Not" and isinstance(vals[0], sp.logic.boolalg.BooleanAtom):
        raise ValueError(f"expression: Not of the constant {vals[0]}")  # C: !true, no true
    for k, v in enumerate(vals):
        want = name in _LOGIC or (name == "ExprCondPair" and k == 1)
        if want and not isinstance(v, BOOLEAN):
            raise ValueError(f"expression: {name} needs a condition, got {str(v)[:40]}")
        if not want and isinstance(v, BOOLEAN):
            raise ValueError(f"expression: {name} needs a number, got the condition "
                             f"{str(v)[:40]}")


def _decode(t, depth, budget):
    if depth > MAX_DEPTH:
        raise ValueError(f"expression nested deeper than {MAX_DEPTH} levels")
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"expression has more than {MAX_NODES} nodes")
    if not isinstance(t, dict) or len(t) not in (1, 2):
        raise ValueError(f"expression: expected an object, got {type(t).__name__}")
    keys = set(t)
    if keys == {"sym"}:
        i = _small_int(t["sym"], 0, len(A) - 1, "symbol index")
        return A[i]
    if keys == {"int"}:
        return sp.Integer(_int(t["int"]))
    if keys == {"rat"}:
        pq = t["rat"]
        if not isinstance(pq, list) or len(pq) != 2:
            raise ValueError("expression: a rational is [p, q]")
        p, q = _int(pq[0]), _int(pq[1])
        if q == 0:
            raise ValueError("expression: zero denominator")
        return sp.Rational(p, q)
    if keys == {"float", "prec"}:
        f = t["float"]
        if not isinstance(f, list) or len(f) != 4:
            raise ValueError("expression: a float is [sign, mantissa, exponent, bitcount]")
        sign = _small_int(f[0], 0, 1, "float sign")
        man = _int(f[1], "float mantissa")
        if man < 0:
            raise ValueError("expression: negative float mantissa")
        exp_ = _small_int(f[2], -MAX_FLOAT_EXP, MAX_FLOAT_EXP, "float exponent")
        bc = _small_int(f[3], -8, MAX_PREC + 64, "float bitcount")
        prec = _small_int(t["prec"], 1, MAX_PREC, "float precision")
        if man:
            if man.bit_length() != bc or man.bit_length() > prec + 64:
                raise ValueError("expression: inconsistent float")
            return sp.Float._new((sign, man, exp_, bc), prec)
        # zero and the special values (inf, nan) have mantissa 0
        from mpmath.libmp import fzero, finf, fninf, fnan
        special = (sign, man, exp_, bc)
        if special not in (fzero, finf, fninf, fnan):
            raise ValueError("expression: inconsistent float")
        return sp.Float._new(special, prec, zero=False)
    if keys == {"const"}:
        name = t["const"]
        if not isinstance(name, str) or name not in CONSTANTS:
            raise ValueError(f"expression: unknown constant {str(name)[:40]!r}")
        if name == "zoo":  # complex infinity: no backend can evaluate it (numpy: KeyError)
            raise ValueError("expression: zoo (complex infinity) cannot be evaluated")
        return CONSTANTS[name]
    if keys == {"f", "args"}:
        name, args = t["f"], t["args"]
        if not isinstance(name, str) or name not in FUNCTIONS:
            raise ValueError(f"expression: {str(name)[:60]!r} is not an allowed function")
        cls, lo, hi = FUNCTIONS[name]
        if not isinstance(args, list) or len(args) < lo or (hi is not None and len(args) > hi):
            count = str(lo) if hi == lo else f"{lo}..{hi if hi is not None else 'n'}"
            raise ValueError(f"expression: {name} takes {count} arguments")
        vals = [_decode(a, depth + 1, budget) for a in args]
        if name == "Piecewise":
            if not all(isinstance(v, ExprCondPair) for v in vals):
                raise ValueError("expression: Piecewise takes ExprCondPair arguments")
        elif any(isinstance(v, ExprCondPair) for v in vals):
            raise ValueError("expression: ExprCondPair outside Piecewise")
        _check_truth_values(name, vals)
        if name == "ExprCondPair":
            return ExprCondPair(*vals)
        if name == "Piecewise" and vals[-1].cond != sp.true:
            # without a catch-all clause some inputs have no value (numpy gives NaN, C nothing)
            raise ValueError("expression: Piecewise needs a last clause with condition true")
        if name == "Pow":
            _check_const_pow(*vals)
        return cls(*vals, evaluate=False)
    raise ValueError(f"expression: unexpected object with keys {sorted(map(str, keys))[:5]}")
