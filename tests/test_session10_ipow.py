"""Session 10: an integer (or bool) base to an integer (or bool) *tensor* exponent computes
PyTorch's integer power (it was refused with a TypeError, and before that gave float32).

PyTorch (the oracle) gives the operands' promoted integer dtype, computed by squaring with
wrap-around in that dtype, and for a negative exponent 1 where the base is 1, +-1 by the
exponent's parity where it is -1, else 0 (base 0 included); bool ** bool is refused.  graphc's
kernels compute it in unsigned 64-bit arithmetic (gc_ipow in kernels/gc_math.h) and store the
low bits.  Checked on numpy and C over every pair of bool/int8/uint8/int16/int32/int64, on
0-d, 1, 7, 33 elements and broadcast shapes, and on OpenCL (PoCL).

One documented difference: graphc promotes a 0-d tensor like any other (numpy's rule, as for
add), where PyTorch lets a 0-d tensor not raise the dtype of an n-d one; the oracle is given
1-d operands so both promote alike.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import graphc as gc
from graphc.runtime.opencl import opencl_available

from backends import C

BACKENDS = ["numpy", C]
DTYPES = ["bool", "int8", "uint8", "int16", "int32", "int64"]
PAIRS = [(b, e) for b, e in itertools.product(DTYPES, DTYPES) if (b, e) != ("bool", "bool")]

# bases: 0, +-1, +-2, +-3, larger and extreme values (wrapped into each dtype by astype)
BASES = np.array([0, 1, -1, 2, -2, 3, -3, 5, -7, 10, 127, -128, 255, 1000, -1000, 65535,
                  2**31 - 1, -2**31, 2**40 + 3, -(2**62) - 1, 2**63 - 1, -2**63, 7, -5, 2, -2,
                  3, -3, 1, -1, 0, 11, 13], np.int64)
# exponents: 0, 1, 31, 63, 64, negatives (odd and even), large ones
EXPS = np.array([0, 1, 31, 63, 64, -1, -2, -3, 2, 3, 7, 8, 15, 16, 32, 62, 65, 127, -128,
                 255, 1000, 2**31 - 1, -2**31, 2**62, -7, 40, 5, 6, -4, 9, 33, 0, 1], np.int64)
assert len(BASES) == len(EXPS) == 33


def _values(src, dtype, shape, shift=0):
    n = int(np.prod(shape, dtype=np.int64))
    v = np.roll(src, shift)[np.arange(n) % len(src)]
    with np.errstate(over="ignore"):
        return v.astype(dtype).reshape(shape)  # wraps, as a cast does


def _torch_pow(a, b):
    # 1-d operands: PyTorch would not let a 0-d one raise the dtype (graphc promotes it)
    ta, tb = torch.atleast_1d(torch.from_numpy(np.array(a))), \
        torch.atleast_1d(torch.from_numpy(np.array(b)))
    out = (ta ** tb).numpy()
    return out.reshape(np.broadcast_shapes(np.shape(a), np.shape(b)))


SHAPES = {"0-d": ((), ()), "1": ((1,), (1,)), "7": ((7,), (7,)), "33": ((33,), (33,)),
          "broadcast": ((7, 1), (5,)), "0-d base": ((), (33,)), "0-d exponent": ((7,), ())}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shapes", list(SHAPES.values()), ids=list(SHAPES))
def test_every_integer_dtype_pair_matches_torch(backend, shapes):
    sb, se = shapes
    phs, arrays, outs, want = [], [], [], []
    for i, (bd, ed) in enumerate(PAIRS):
        a = _values(BASES, bd, sb, shift=i)
        b = _values(EXPS, ed, se, shift=3 * i)
        x = gc.placeholder(sb, bd, name=f"x{i}")
        y = gc.placeholder(se, ed, name=f"y{i}")
        phs += [x, y]
        arrays += [a, b]
        outs.append(x ** y)
        want.append(_torch_pow(a, b))
    got = gc.compile(phs, outs, backend=backend)(*arrays)
    for (bd, ed), o, g, w in zip(PAIRS, outs, got, want):
        assert o.dtype == w.dtype.name == g.dtype.name, (bd, ed, o.dtype, w.dtype)
        np.testing.assert_array_equal(g, w, err_msg=f"{bd} ** {ed}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_specific_values_of_torch(backend):
    """The cases named in the task, pinned by value (not only against the oracle)."""
    x = gc.placeholder((None,), "int64", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    xs = np.array([0, 0, 1, -1, -1, 2, -2, 3, 2, 2, 3, 0, 5])
    ys = np.array([-1, -2, -5, -3, -4, -1, -3, 40, 63, 64, 0, 0, 2**62])
    got = gc.compile([x, y], x ** y, backend=backend)(xs, ys)
    three_40 = pow(3, 40, 2**64) - 2**64  # wraps negative in int64
    five_big = pow(5, 2**62, 2**64)
    five_big -= 2**64 if five_big >= 2**63 else 0
    want = [0, 0, 1, -1, 1, 0, 0, three_40, -2**63, 0, 1, 1, five_big]
    assert got.dtype == np.int64 and got.tolist() == want
    assert (torch.tensor(xs) ** torch.tensor(ys)).tolist() == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_and_array_operands(backend):
    y8 = gc.placeholder((6,), "int8", name="y8")
    x16 = gc.placeholder((6,), "int16", name="x16")
    ys = np.array([0, 1, 7, 8, -1, 100], np.int8)
    xs = np.array([-1, 2, 3, -3, 1, 0], np.int16)
    outs = [2 ** y8,                      # a Python int base takes the exponent's dtype
            gc.pow(-1, y8),               # a negative literal base stays integer
            x16 ** np.array(3),           # a 0-d array exponent: a literal
            x16 ** np.array([0, 1, 2, 3, 4, 64], np.int8),  # an array exponent
            x16 ** gc.constant(np.array([5, 4, 3, 2, 1, 0], np.int64)),
            gc.cast(x16, "bool") ** y8]
    got = gc.compile([y8, x16], outs, backend=backend)(ys, xs)
    ty, tx = torch.tensor(ys), torch.tensor(xs)
    want = [2 ** ty, (-1) ** ty, tx ** 3, tx ** torch.tensor([0, 1, 2, 3, 4, 64], dtype=torch.int8),
            tx ** torch.tensor([5, 4, 3, 2, 1, 0]), tx.bool() ** ty]
    for i, (o, g, w) in enumerate(zip(outs, got, want)):
        w = w.numpy()
        assert o.dtype == g.dtype.name == w.dtype.name, (i, o.dtype, w.dtype)
        np.testing.assert_array_equal(g, w, err_msg=f"output {i}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_uint16_uint32_wrap_like_python_modular_power(backend):
    # PyTorch has no uint16/uint32 pow: Python's pow modulo 2**bits is the oracle
    x = gc.placeholder((5,), "uint32", name="x")
    y = gc.placeholder((5,), "uint16", name="y")
    xs = np.array([3, 2**32 - 1, 0, 65535, 7], np.uint32)
    ys = np.array([40, 65535, 0, 3, 1], np.uint16)
    out = x ** y
    assert out.dtype == "uint32"
    got = gc.compile([x, y], out, backend=backend)(xs, ys)
    assert got.tolist() == [pow(int(a), int(b), 2**32) for a, b in zip(xs, ys)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_with_other_integer_and_float_ops_and_gradient_elsewhere(backend):
    x = gc.placeholder((6,), "int64", name="x")
    y = gc.placeholder((6,), "int32", name="y")
    w = gc.placeholder((6,), "float32", name="w")
    xs = np.array([3, 2**40 + 1, -1, 5, 7, 2**33 + 3])
    ys = np.array([40, 3, -5, 27, 22, 2], np.int32)
    ws = np.linspace(-1, 1, 6, dtype=np.float32)
    p = x ** y
    loss = gc.sum(gc.cast(p, "float32") * w * w)
    (gw,) = gc.grad(loss, [w])  # the integer power has no gradient; w's is still exact
    outs = [p * 3 + x, (x ** y) ** 2, x ** x, gc.cast(p, "float32") * w, w * 2.0, gw]
    got = gc.compile([x, y, w], outs, backend=backend)(xs, ys, ws)
    tx, ty = torch.tensor(xs), torch.tensor(ys)
    tw = torch.tensor(ws, requires_grad=True)
    tp = tx ** ty
    tl = (tp.float() * tw * tw).sum()
    tl.backward()
    want = [tp * 3 + tx, tp ** 2, tx ** tx, tp.float() * tw, tw * 2.0, tw.grad]
    for i, (g, t) in enumerate(zip(got, want)):
        t = t.detach().numpy()
        assert g.dtype == t.dtype, i
        np.testing.assert_allclose(g, t, rtol=1e-6, err_msg=f"output {i}")
    with pytest.raises(ValueError, match="cannot differentiate with respect to x of dtype int64"):
        gc.grad(loss, [x])


def test_refused_operands_name_pow_and_the_operands():
    x = gc.placeholder((3,), "int64", name="x")
    b = gc.placeholder((None, 3), "bool", name="b")
    with pytest.raises(TypeError, match=r"pow: a bool base \(bool tensor of shape \(None, 3\)\) "
                                        r"to a bool exponent .*PyTorch has no bool pow"):
        b ** b
    with pytest.raises(TypeError, match=r"pow: a uint64 operand .*uint64 tensor of shape"):
        x ** gc.cast(x, "uint64")
    with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
        torch.tensor([True]) ** torch.tensor([True])
    # a known negative exponent keeps raising, as numpy and PyTorch's scalar pow
    with pytest.raises(ValueError, match="integers to negative integer powers"):
        x ** gc.constant(np.array([1, -2, 3]))
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        torch.tensor([2]) ** -1


def test_graph_file_round_trip():
    from graphc import export
    x = gc.placeholder((3,), "int64", name="x")
    y = gc.placeholder((3,), "int16", name="y")
    ins, outs = export.from_json(export.to_json([x ** y], [x, y]))
    xs, ys = np.array([2, -1, 3]), np.array([3, -3, 41], np.int16)
    got = gc.compile(ins, outs, backend="numpy")(xs, ys)[0]
    np.testing.assert_array_equal(got, (torch.tensor(xs) ** torch.tensor(ys)).numpy())


@pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")
def test_opencl_matches_torch(monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")  # a quicker PoCL build
    pairs = [("int64", "int64"), ("int8", "uint8"), ("uint8", "int32"), ("bool", "int16"),
             ("int32", "bool")]
    phs, arrays, outs, want = [], [], [], []
    for i, (bd, ed) in enumerate(pairs):
        a, b = _values(BASES, bd, (33,), shift=i), _values(EXPS, ed, (33,), shift=5 * i)
        phs += [gc.placeholder((33,), bd, name=f"x{i}"), gc.placeholder((33,), ed, name=f"y{i}")]
        arrays += [a, b]
        outs.append(phs[-2] ** phs[-1])
        want.append(_torch_pow(a, b))
    got = gc.compile(phs, outs, backend="opencl")(*arrays)
    for (bd, ed), g, w in zip(pairs, got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w, err_msg=f"{bd} ** {ed}")


@pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")
def test_cuda_source_through_the_cupy_stand_in(monkeypatch):
    # the CUDA renderer's program, launched by fake_cupy as OpenCL (as test_review16_gpu)
    import sys
    import graphc.runtime.cuda as cuda_rt
    import graphc.runtime.cuda_backend as cuda_be
    from fake_cupy import FakeCupy
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")
    monkeypatch.setitem(sys.modules, "cupy", FakeCupy())
    monkeypatch.setattr(cuda_rt, "_DEFAULT", None)
    monkeypatch.setattr(cuda_be, "_ADAPTERS", {})
    x = gc.placeholder((33,), "int8", name="x")
    y = gc.placeholder((33,), "int32", name="y")
    xs, ys = np.arange(-16, 17, dtype=np.int8), np.arange(-5, 28, dtype=np.int32)
    got = gc.compile([x, y], x ** y, backend="cuda")(xs, ys)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, (torch.tensor(xs) ** torch.tensor(ys)).numpy())
