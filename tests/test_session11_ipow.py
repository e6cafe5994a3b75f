"""Session 11: an integer tensor to a Python (or numpy) int exponent above 64, and a bool tensor
to any non-negative int, give PyTorch's integer result (both gave float32 before).

PyTorch 2.13 (the oracle): int8/int16/int32/int64/uint8 ``x ** e`` keeps x's dtype at any
exponent, computed with wrap-around (int32 3 ** 100 is -818408495, uint8 3 ** 100 is 209), and
the same for a numpy integer scalar exponent (np.int64(100), np.int32(100)); a bool tensor to
an int gives int64 (``b ** 0`` is 1, ``b ** e`` is 0/1 for e >= 1, at 1, 2, 65, 100, 2**40).

graphc computes the power with symbolic.IPow (64-bit squaring in gc_ipow / _np_ipow; its low
bits are the power modulo 2**bits of a narrower dtype) and does not wrap the exponent literal
into the base's dtype.  One documented difference: PyTorch refuses an exponent outside the
base's dtype ("value cannot be converted to type int8_t without overflow": int8 ** 128,
uint8 ** 256, int16 ** 32768, int32 ** 2**31); graphc computes it, checked against Python's
modular power.  An exponent of 2**63 or more is a ValueError in graphc (a RuntimeError or
OverflowError in PyTorch).
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch")

from backends import C, OPENCL

BACKENDS = ["numpy", C, OPENCL]
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8"]
VALUES = [0, 1, -1, 2, 3, -3, 127, -128, 5, -7]
EXPONENTS = [65, 100, 127, 128, 255, 1000, 32767, 2**31 - 1, 2**40, 2**63 - 1,
             np.int64(100), np.int32(100), np.int64(1000), np.uint64(2**40)]


@pytest.fixture(autouse=True)
def _quick_opencl_build(monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")  # a quicker PoCL build


def _modular(xs: np.ndarray, e: int) -> np.ndarray:
    """x ** e wrapped into x's dtype: Python's exact modular power."""
    bits = np.iinfo(xs.dtype).bits
    return np.array([pow(int(v), int(e), 2**bits) for v in xs], np.uint64).astype(xs.dtype)


def _torch_or_none(xs: np.ndarray, e):
    """PyTorch's x ** e, or None where it refuses the exponent (outside x's dtype)."""
    try:
        return (torch.from_numpy(xs) ** e).numpy()
    except RuntimeError as err:
        assert "without overflow" in str(err)
        assert int(e) > np.iinfo(xs.dtype).max
        return None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_base_to_an_int_above_64_matches_torch(backend, dtype):
    with np.errstate(over="ignore"):
        xs = np.array(VALUES).astype(dtype)  # wraps -128 / -1 / -3 / -7 into uint8
    x = gc.placeholder((len(xs),), dtype, name="x")
    outs = [x ** e for e in EXPONENTS]
    got = gc.compile([x], outs, backend=backend)(xs)
    compared = 0
    for e, o, g in zip(EXPONENTS, outs, got):
        want = _modular(xs, e)
        assert o.dtype == g.dtype.name == dtype, (dtype, e, o.dtype, g.dtype)
        np.testing.assert_array_equal(g, want, err_msg=f"{dtype} ** {e!r}")
        t = _torch_or_none(xs, e)
        if t is not None:
            compared += 1
            assert t.dtype == g.dtype
            np.testing.assert_array_equal(g, t, err_msg=f"torch {dtype} ** {e!r}")
    assert compared >= 4  # 65, 100, 127 and the numpy int 100 at least, for every dtype


def test_pinned_values_from_torch():
    x32 = gc.placeholder((2,), "int32", name="x32")
    x8 = gc.placeholder((1,), "int8", name="x8")
    u8 = gc.placeholder((1,), "uint8", name="u8")
    outs = [x32 ** 100, x8 ** 100, u8 ** 70, u8 ** 100, x32 ** np.int64(100)]
    got = gc.compile([x32, x8, u8], outs, backend="numpy")(
        np.array([3, -3], np.int32), np.array([3], np.int8), np.array([3], np.uint8))
    assert [g.dtype.name for g in got] == ["int32", "int8", "uint8", "uint8", "int32"]
    assert got[0].tolist() == [-818408495, -818408495]
    assert got[1].tolist() == [-47]
    assert got[2].tolist() == [pow(3, 70, 256)]
    assert got[3].tolist() == [209]
    assert got[4].tolist() == [-818408495, -818408495]
    assert (torch.tensor([3, -3], dtype=torch.int32) ** 100).tolist() == [-818408495] * 2
    assert (torch.tensor([3], dtype=torch.uint8) ** 70).tolist() == [pow(3, 70, 256)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_base_to_an_int_matches_torch(backend):
    bs = np.array([True, False, True])
    b = gc.placeholder((3,), "bool", name="b")
    exps = [0, 1, 2, 64, 65, 100, 2**40, np.int64(2), np.int32(3), np.int64(100)]
    outs = [b ** e for e in exps]
    got = gc.compile([b], outs, backend=backend)(bs)
    for e, o, g in zip(exps, outs, got):
        w = (torch.from_numpy(bs) ** e).numpy()
        assert o.dtype == g.dtype.name == w.dtype.name == "int64", (e, o.dtype, w.dtype)
        np.testing.assert_array_equal(g, w, err_msg=f"bool ** {e!r}")
        np.testing.assert_array_equal(g, [1, 1, 1] if int(e) == 0 else [1, 0, 1])


@pytest.mark.parametrize("backend", ["numpy", C])
def test_unsigned_bases_torch_has_no_pow_for_wrap_like_modular_power(backend):
    # PyTorch has no uint16/32/64 pow: Python's modular power is the oracle, as for e <= 64
    dtypes = ["uint16", "uint32", "uint64"]
    phs = [gc.placeholder((4,), d, name=f"x{i}") for i, d in enumerate(dtypes)]
    arrays = [np.array([3, 0, 1, np.iinfo(d).max], d) for d in dtypes]
    outs = [p ** e for p in phs for e in (65, 1000, 2**40)]
    got = gc.compile(phs, outs, backend=backend)(*arrays)
    k = 0
    for d, xs in zip(dtypes, arrays):
        for e in (65, 1000, 2**40):
            assert outs[k].dtype == got[k].dtype.name == d
            np.testing.assert_array_equal(got[k], _modular(xs, e), err_msg=f"{d} ** {e}")
            k += 1


@pytest.mark.parametrize("backend", ["numpy", C])
def test_fused_with_other_ops(backend):
    x = gc.placeholder((4,), "int16", name="x")
    w = gc.placeholder((4,), "float32", name="w")
    xs = np.array([3, -3, 7, 1], np.int16)
    ws = np.array([1, 2, 3, 4], np.float32)
    p = x ** 1000
    outs = [p + x, gc.cast(p, "float32") * w, (x ** 100) ** 65]
    got = gc.compile([x, w], outs, backend=backend)(xs, ws)
    tx, tw = torch.from_numpy(xs), torch.from_numpy(ws)
    tp = tx ** 1000
    want = [tp + tx, tp.float() * tw, (tx ** 100) ** 65]
    for i, (o, g, t) in enumerate(zip(outs, got, want)):
        t = t.numpy()
        assert o.dtype == g.dtype.name == t.dtype.name, i
        np.testing.assert_array_equal(g, t, err_msg=f"output {i}")


def test_exponent_beyond_int64_is_a_clear_error():
    x = gc.placeholder((3,), "int32", name="x")
    b = gc.placeholder((3,), "bool", name="b")
    for base in (x, b):
        for e in (2**63, 2**64, 10**30, np.uint64(2**63)):
            with pytest.raises(ValueError, match=rf"pow: the integer exponent {int(e)} of "
                                                 rf".* does not fit in int64"):
                base ** e
    x ** (2**63 - 1)  # the largest int64 is accepted (PyTorch computes int64 3 ** (2**63-1))
    with pytest.raises(RuntimeError, match="without overflow"):
        torch.tensor([3]) ** 2**63


def test_negative_exponents_still_refused():
    x = gc.placeholder((3,), "int8", name="x")
    b = gc.placeholder((3,), "bool", name="b")
    for base in (x, b):
        for e in (-1, -65, -1000, np.int64(-100)):
            with pytest.raises(ValueError, match="integers to negative integer powers"):
                base ** e
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        torch.tensor([True]) ** -1


def test_uint64_tensor_exponent_still_refused():
    x = gc.placeholder((3,), "int64", name="x")
    with pytest.raises(TypeError, match=r"pow: a uint64 operand"):
        x ** gc.cast(x, "uint64")


def test_docstring_describes_it():
    doc = gc.pow.__doc__
    assert "Python int above 64" not in doc
    assert "keeps the base's dtype at any" in doc and "bool tensor to one gives int64" in doc


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", INT_DTYPES + ["bool"])
@pytest.mark.parametrize("e", [True, False, np.bool_(True), np.bool_(False)])
def test_python_bool_exponent_keeps_the_base_dtype(backend, dtype, e):
    """PyTorch: a Python bool exponent is 1 or 0 and the result keeps the base's dtype (a bool
    base stays bool: b ** True is b, b ** False all True); graphc gave float32."""
    values = np.array([True, False]) if dtype == "bool" else np.array(VALUES).astype(dtype)
    x = gc.placeholder(values.shape, dtype, name="x")
    y = x ** e
    got = gc.compile([x], y, backend=backend)(values)
    want = (torch.from_numpy(values) ** bool(e)).numpy()
    assert y.dtype == got.dtype.name == want.dtype.name == dtype
    np.testing.assert_array_equal(got, want)
