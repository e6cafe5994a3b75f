"""Session 10 op gaps, with PyTorch as the oracle, on the numpy and C backends:

1. an integer (or bool) base to a negative integer power gave floats; numpy and PyTorch raise
   "Integers to negative integer powers are not allowed".  It is a ValueError when the graph
   is built.  An integer tensor exponent of an integer base was first refused here too; it
   now gives PyTorch's integer result (0 or +-1 for negative exponents, where numpy raises),
   see test_session10_ipow.py.
2. hard_tanh's gradient at NaN: PyTorch's depends on the tensor's length (scalar loop: 1,
   vector loop: 0); graphc's is 1 (the identity branch NaN takes in the forward) on every
   length, path (plain loop, GEMM epilogue) and backend.
3. GraphML: a CR in a name came back as LF (XML parsers normalize line ends in text); CRs are
   written as ``&#13;``.
4. prelu's mixed second derivative at t = 0: 1 on every backend and in either order (the
   derivative of the first derivatives' negative branch), where PyTorch's double backward
   gives 0 and a central difference 0.5.
"""
from __future__ import annotations

import gzip
import xml.dom.minidom
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pytest
import torch

import graphc as gc
from graphc import export

from backends import C

BACKENDS = ["numpy", C]
F = torch.nn.functional


# -- 1. integer ** negative integer ------------------------------------------------------------

X_INT = np.array([3, -7, 0, 1, -1], np.int64)


@pytest.mark.parametrize("dtype", ["int64", "int32", "int8", "uint8", "bool"])
@pytest.mark.parametrize("form", ["op", "pow", "np.int64", "0-d array", "array", "constant"])
def test_integer_base_negative_integer_exponent_raises_like_numpy_and_torch(dtype, form):
    x = gc.placeholder((5,), dtype, name="x")
    build = {
        "op": lambda: x ** -1,
        "pow": lambda: gc.pow(x, -2),
        "np.int64": lambda: x ** np.int64(-1),
        "0-d array": lambda: x ** np.array(-3),
        "array": lambda: x ** np.array([1, 2, -1, 0, 3]),
        "constant": lambda: x ** gc.constant(np.array(-1)),
    }[form]
    with pytest.raises(ValueError, match=rf"pow: integers to negative integer powers are not "
                                         rf"allowed.*base {dtype} tensor of shape \(5,\)"):
        build()
    # the oracles refuse the same
    xs = X_INT.astype(dtype)
    with pytest.raises(ValueError, match="Integers to negative integer powers"):
        xs ** np.array([1, 2, -1, 0, 3])
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        torch.tensor(xs) ** -1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("build,torch_build", [
    (lambda x, y: x ** y, lambda x, y: x ** y),
    (lambda x, y: gc.pow(x, y), lambda x, y: torch.pow(x, y)),
    (lambda x, y: 2 ** y, lambda x, y: 2 ** y),
    (lambda x, y: gc.cast(x, "bool") ** y, lambda x, y: x.bool() ** y)])
def test_integer_base_integer_tensor_exponent_is_integer_as_torch(backend, build, torch_build):
    # (session 10 first refused these with a TypeError; they now compute PyTorch's integer
    # power: see test_session10_ipow.py for the full differential sweep)
    x = gc.placeholder((5,), "int64", name="x")
    y = gc.placeholder((None, 5), "int32", name="y")
    ys = np.array([[2, -1, 3, 0, -2], [40, 63, 64, -3, 1]], np.int32)
    out = build(x, y)
    want = torch_build(torch.tensor(X_INT), torch.tensor(ys)).numpy()
    assert out.dtype == want.dtype.name
    got = gc.compile([x, y], out, backend=backend)(X_INT, ys)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_powers_that_stay_allowed_match_torch(backend):
    x = gc.placeholder((5,), "int64", name="x")
    y = gc.placeholder((5,), "int32", name="y")
    ys = np.array([2, -1, 3, 0, -2], np.int32)
    e = np.array([1, 2, 0, 3, 1])
    outs = [x ** 3, x ** 0, x ** e,  # non-negative: integer
            gc.cast(x, "float32") ** -1, gc.cast(x, "float32") ** y,  # float base
            x ** gc.cast(y, "float32"), 2.0 ** y, x ** 1.5]  # float exponent
    got = gc.compile([x, y], outs, backend=backend)(X_INT, ys)
    tx, ty = torch.tensor(X_INT), torch.tensor(ys)
    want = [tx ** 3, tx ** 0, tx ** torch.tensor(e),
            tx.float() ** -1, tx.float() ** ty, tx ** ty.float(), 2.0 ** ty, tx ** 1.5]
    for i, (g, w) in enumerate(zip(got, want)):
        w = w.numpy()
        assert g.dtype == (w.dtype if i < 3 else np.float32), i
        np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=f"output {i}")
    assert got[0].dtype == got[2].dtype == np.int64


def test_pow_docstring_says_what_is_refused():
    doc = gc.pow.__doc__
    assert "ValueError" in doc
    assert "negative integer power that is known when the graph is built" in doc
    assert "integer (or bool) *tensor* exponent" in doc and "as in PyTorch" in doc


# -- 2. hard_tanh's gradient at NaN -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 16, 33, 100])
def test_hard_tanh_gradient_at_nan_is_one_on_every_length(backend, dtype, n):
    rng = np.random.default_rng(n)
    xs = (rng.normal(size=n) * 2).astype(dtype)
    xs[::3] = np.nan
    nan = np.isnan(xs)
    x = gc.placeholder((n,), dtype, name="x")
    y = gc.hard_tanh(x)
    (g,) = gc.grad(gc.sum(y * 3.0), [x])
    out, grad = gc.compile([x], [y, g], backend=backend)(xs)
    tx = torch.tensor(xs, requires_grad=True)
    ty = F.hardtanh(tx)
    (ty * 3.0).sum().backward()
    np.testing.assert_array_equal(out, ty.detach().numpy())  # NaN where NaN
    np.testing.assert_array_equal(grad[~nan], tx.grad.numpy()[~nan])
    np.testing.assert_array_equal(grad[nan], 3.0)  # the incoming gradient passes through
    # torch's scalar loop (a one-element tensor) gives the same at NaN
    t1 = torch.tensor([np.nan], dtype=getattr(torch, dtype), requires_grad=True)
    (F.hardtanh(t1) * 3.0).sum().backward()
    assert t1.grad.item() == 3.0


@pytest.mark.parametrize("n", [1, 7, 16, 33, 100])
def test_hard_tanh_nan_gradient_same_on_numpy_and_c_through_fused_paths(n):
    pytest.importorskip("cffi")
    rng = np.random.default_rng(n)
    xs = (rng.normal(size=(n, 3)) * 2).astype("float32")
    xs[::2, 1] = np.nan
    ws = rng.normal(size=(3, 4)).astype("float32")
    results = {}
    for backend in ("numpy", "c"):
        x = gc.placeholder((n, 3), name="x")
        w = gc.parameter(ws, name="w")
        h = gc.hard_tanh(x @ w)                       # the GEMM epilogue on C
        v = gc.hard_tanh(x * 1.5 + 0.25)              # a fused elementwise chain
        gx, gw = gc.grad(gc.sum(h) + gc.sum(v * v), [x, w])
        (g1,) = gc.grad(gc.sum(gc.hard_tanh(x)), [x])
        (g2,) = gc.grad(gc.sum(g1 * x), [x])          # second order: g1 + x * 0
        results[backend] = gc.compile([x], [h, v, gx, gw, g1, g2], backend=backend)(xs)
    for i, (a, b) in enumerate(zip(results["numpy"], results["c"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"output {i}")
    g1, g2 = results["c"][4:]
    np.testing.assert_array_equal(g1[np.isnan(xs)], 1.0)
    np.testing.assert_array_equal(g2, g1)


def test_hard_tanh_docstring_documents_nan():
    assert "At NaN the result is NaN and the gradient passes" in gc.hard_tanh.__doc__


# -- 3. GraphML keeps CR ------------------------------------------------------------------------

HOSTILE = ["a\rb", "a\r\nb", "\r", "\r\r\n\n", "\n", "a\tb\n", " x ", "ok", "\u00e9\r\u4e2d"]


def _named_graph():
    outs = []
    for i, name in enumerate(HOSTILE):
        y = gc.relu(gc.placeholder((2,), name=f"in{i}"))
        y.name = name
        outs.append(y)
    return outs


@pytest.mark.parametrize("suffix", [".graphml", ".graphml.gz"])
def test_graphml_round_trips_carriage_returns(tmp_path, suffix):
    path = tmp_path / f"g{suffix}"
    export.to_graphml(_named_graph(), path)
    h = nx.read_graphml(path)
    names = [a["name"] for _, a in h.nodes(data=True) if a["raw_op"] != "placeholder"]
    assert sorted(names) == sorted(HOSTILE)
    raw = gzip.open(path).read() if suffix.endswith(".gz") else path.read_bytes()
    assert b"\r" not in raw and b"a&#13;b" in raw


def test_graphml_carriage_returns_survive_other_xml_parsers(tmp_path):
    path = tmp_path / "g.graphml"
    export.to_graphml(_named_graph(), path)
    texts = {e.text for e in ET.parse(path).iter() if e.text}
    assert {"a\rb", "a\r\nb", "\r", "\r\r\n\n"} <= texts
    dom = xml.dom.minidom.parse(str(path))
    data = {d.firstChild.data for d in dom.getElementsByTagName("data") if d.firstChild}
    assert {"a\rb", "a\r\nb", "\u00e9\r\u4e2d"} <= data


# -- 4. prelu's mixed second derivative at 0 ----------------------------------------------------

XP = np.array([-1.5, -0.0, 0.0, 2.0, 0.0], np.float64)
AP = np.array([0.25], np.float64)


def _prelu_second(backend):
    x = gc.placeholder((5,), "float64", name="x")
    a = gc.placeholder((1,), "float64", name="a")
    gx, ga = gc.grad(gc.sum(gc.prelu(x, a) * np.arange(1.0, 6.0)), [x, a])
    (h_xa,) = gc.grad(gc.sum(gx), [a])   # sum_i d2/dx_i da
    (h_ax,) = gc.grad(gc.sum(ga), [x])   # d2/da dx_i
    return gc.compile([x, a], [gx, ga, h_xa, h_ax], backend=backend)(XP, AP)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prelu_mixed_second_derivative_at_zero(backend):
    gx, ga, h_xa, h_ax = _prelu_second(backend)
    w = np.arange(1.0, 6.0)
    # the first derivatives are PyTorch's (the negative branch at 0)
    tx = torch.tensor(XP, requires_grad=True)
    ta = torch.tensor(AP, requires_grad=True)
    tgx, tga = torch.autograd.grad((F.prelu(tx, ta) * torch.tensor(w)).sum(), [tx, ta],
                                   create_graph=True)
    np.testing.assert_array_equal(gx, tgx.detach().numpy())
    np.testing.assert_array_equal(ga, tga.detach().numpy())
    # d2/da dx: the weight on the negative branch, 0 on the positive one, in either order
    want = np.where(XP > 0, 0.0, w)
    np.testing.assert_array_equal(h_ax, want)
    assert h_xa.tolist() == [want.sum()]
    # d/dx(t) = alpha * w at t = 0 for every alpha: its alpha-derivative is exactly w
    eps = 1e-3
    hi = _prelu_first_at(AP + eps)[0]
    lo = _prelu_first_at(AP - eps)[0]
    np.testing.assert_allclose(((hi - lo) / (2 * eps))[XP == 0], w[XP == 0])
    # PyTorch's double backward agrees away from 0 (it gives 0 at 0: it tests t >= 0)
    (th,) = torch.autograd.grad(tga.sum(), tx)
    np.testing.assert_array_equal(th.numpy()[XP != 0], want[XP != 0])


def _prelu_first_at(alpha):
    x = gc.placeholder((5,), "float64", name="x")
    a = gc.placeholder((1,), "float64", name="a")
    gx, = gc.grad(gc.sum(gc.prelu(x, a) * np.arange(1.0, 6.0)), [x])
    return gc.compile([x, a], [gx], backend="numpy")(XP, alpha)


def test_prelu_mixed_second_derivative_same_in_gemm_epilogue():
    pytest.importorskip("cffi")
    xs = np.array([[0.0, 0.0], [1.0, -2.0], [0.0, 0.0]], np.float32)  # rows of 0: t == 0
    ws = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5]], np.float32)
    results = {}
    for backend in ("numpy", "c"):
        x = gc.placeholder((3, 2), name="x")
        w = gc.parameter(ws, name="w")
        a = gc.parameter(np.array([0.25], np.float32), name="a")
        gx, ga = gc.grad(gc.sum(gc.prelu(x @ w, a)), [x, a])
        (h,) = gc.grad(gc.sum(ga), [x])
        results[backend] = gc.compile([x], [gx, ga, h], backend=backend)(xs)
    for a_, b_ in zip(results["numpy"], results["c"]):
        np.testing.assert_allclose(a_, b_, rtol=1e-6)
    # rows of zeros: every t is 0, so d(dL/da)/dx = sum_j w[:, j]
    np.testing.assert_allclose(results["c"][2][0], ws.sum(1), rtol=1e-6)
