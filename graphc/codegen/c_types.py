"""C spellings shared by the C renderers: element types, the type a kernel computes in, how a
kernel addresses a slot or an arena buffer, and when a loop is worth running in parallel."""
from __future__ import annotations

CTYPES = {"float32": "float", "float64": "double", "int64": "int64_t", "int32": "int32_t",
          "int16": "int16_t", "int8": "int8_t", "uint8": "uint8_t", "uint16": "uint16_t",
          "uint32": "uint32_t", "uint64": "uint64_t", "bool": "uint8_t"}


def ctype(dtype: str) -> str:
    try:
        return CTYPES[dtype]
    except KeyError:
        raise TypeError(f"the C backend does not support dtype {dtype}") from None


def math_dtype(dtype: str) -> str:
    """The float type scalar code of a kernel computes in."""
    return "float64" if dtype == "float64" else "float32"


def compute_type(dtypes, converts_only: bool = False) -> tuple[str, str]:
    """(printer dtype, C type) an elementwise kernel computes in, given its inputs' and output's
    dtypes: double if any is float64, float if any is a float, else 64-bit integers (exact for
    integer arithmetic and comparisons of labels).  ``converts_only``: every value the kernel
    stores is one of its operands (a cast, a copy), which int64_t carries exactly between any
    integer types (C's conversions wrap as numpy's astype does), uint64 included."""
    dtypes = set(dtypes)
    if "float64" in dtypes:
        return "float64", "double"
    if any(d.startswith("float") for d in dtypes):
        return "float32", "float"
    if "uint64" in dtypes and not converts_only:
        # int64_t would compare (max, <, ==) values from 2**63 on as negative numbers; with
        # signed operands (a comparison: arithmetic results are float64), numpy compares
        # values, and so do doubles (up to their rounding)
        if any(d.startswith("int") for d in dtypes):
            return "float64", "double"
        return "float64", "uint64_t"
    return "float64", "int64_t"


def pointer(storage, dtype: str, const: bool = True) -> str:
    t = ("const " if const else "") + ctype(dtype)
    if storage.where == "slot":
        return f"(({t}*)slots[{storage.index}])"
    return f"(({t}*)(arena + {storage.index}))"


GC_PAR_MIN = 32768      # elements below which a reduction runs on one thread (gc_runtime.h)


def converts_only(plan) -> bool:
    """Whether every value an elementwise ``plan`` stores is one of its arguments unchanged."""
    import sympy as sp
    return all(isinstance(expr, sp.Symbol) for expr, _ in plan.exprs)

