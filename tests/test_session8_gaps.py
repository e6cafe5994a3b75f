"""Session 8: behaviour gaps against PyTorch, closed on every backend (numpy, c, opencl).

* G1 the gradient of ``x / x`` at x = +-inf was 0 (PyTorch: NaN): its term -g x / x**2 had its
  repeated input merged, which SymPy simplified to -g / x (0 at inf); merging is now checked
  numerically at IEEE special values and kept apart when it cancels anything.
* G2 ``leaky_relu(-inf, alpha=0)`` was 0 (PyTorch: NaN, -inf * 0) and ``leaky_relu(x < 0)`` /
  ``elu(x < 0)`` with alpha = 0 were +0 (PyTorch: -0): SymPy folded 0 * x to 0.  A zero
  parameter is now a constant operand of the expression (kept symbolic).
* G3 ``sum`` of int8/int16/int32/unsigned/bool tensors kept the input dtype (int32 sums wrapped
  past 2**31); PyTorch sums every integer dtype to int64 (numpy too for signed ones).  ``max``
  keeps the dtype; ``mean`` of integers stays float32 on every backend (PyTorch raises; graphc
  keeps its documented int -> float32 math rule, as for exp and sqrt).
* G6 a ``GRAPHC_KERNELS_DIR`` lacking a file (gc_gemm_core.c, gc_math.h, gc_gpu_gemm.h) made
  compiling raise a raw FileNotFoundError (or a compiler error); it is ``gc.BackendUnavailable``
  naming the file, the directory and the variable.
* G7 ``gc.export.from_json`` took any value for the trans flags of ``bmm`` / ``dense`` ("yes",
  2), and any extra attribute on any node (a stray ``label`` reaches generated code as a
  comment): the fused ops have schemas now, optional attributes are typed, and a node of one of
  graphc's ops with an attribute outside its schema is a ValueError.
* G5 ``dropout(t, rate=1.0, training=True)`` (and ``nn.Dropout(1.0)``) raised ValueError;
  PyTorch returns t * 0 (zeros, NaN at inf / NaN) with a zero gradient, and the identity when
  not training.
* G4 ``relu``, ``hard_tanh`` and ``step`` of an integer tensor returned float32; PyTorch's relu,
  hardtanh and heaviside keep the integer dtype (relu and hardtanh refuse bools, hardtanh
  unsigned types: TypeError here too).  sigmoid, tanh, softsign, exp... of integers stay float32,
  as PyTorch's; leaky_relu, elu, selu, softplus, silu, mish, gelu (which PyTorch refuses for
  integers) still give float32.
* G4b the numpy reference computed float math of int8 / uint8 tensors in float16 (elu(int8 -2)
  -0.86474609375) and negated unsigned values before converting them (sigmoid(uint8 3) was 0,
  selu(uint8 254) 267); integer operands of a float op are converted to its dtype first, as
  PyTorch and the compiled backends do.

Expected values are hard-coded (taken from PyTorch); where torch is importable the tests also
compare with it directly.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL

BACKENDS = ["numpy", C, OPENCL]
NAN, INF = np.nan, np.inf


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


def torch_or_skip():
    return pytest.importorskip("torch")


# -- G1: x / x at +-inf ---------------------------------------------------------------------

X1 = np.array([-1.0, 0.0, 2.0, NAN, INF, -INF, 3.0], np.float32)
DIV_SAME_Y = [1, NAN, 1, NAN, NAN, NAN, 1]
DIV_SAME_G = [0, NAN, 0, NAN, NAN, NAN, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_x_over_x_is_nan_at_inf(backend):
    x = gc.placeholder((7,), name="x")
    y = x / x
    g = gc.grad(gc.sum(y), x)
    out, grad = gc.compile([x], [y, g], backend=backend)(X1)
    close(out, DIV_SAME_Y)
    close(grad, DIV_SAME_G)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_cancellation_of_a_merged_input_is_kept_apart(backend):
    # x * y / x**2 (here the gradient of x / x's denominator: -g x / x**2) is not g / x
    x = gc.placeholder((7,), name="x")
    y = gc.div(x * 3.0, gc.square(x))
    direct = gc.div(gc.mul(x, 3.0), gc.mul(x, x))
    out, out2 = gc.compile([x], [y, direct], backend=backend)(X1)
    with np.errstate(all="ignore"):
        want = (X1.astype(np.float64) * 3.0) / (X1.astype(np.float64) ** 2)
    close(out, want)
    close(out2, want)


def test_x_over_x_matches_torch():
    torch = torch_or_skip()
    t = torch.tensor(X1, requires_grad=True)
    y = t / t
    y.sum().backward()
    close(y.detach().numpy(), DIV_SAME_Y)
    close(t.grad.numpy(), DIV_SAME_G)


def test_merges_that_cancel_nothing_still_merge():
    x = gc.placeholder((3,), name="x")
    for y in (x * x, x + x, gc.maximum(x, x), gc.minimum(x, x), gc.pow(x, x)):
        assert list(y.inputs) == [x], y.attrs["expr"]


# -- G2: leaky_relu / elu / prelu with alpha = 0 at -inf --------------------------------------

X2 = np.array([-INF, -2.0, -0.0, 0.0, 3.0, INF, NAN], np.float32)
ZERO_ALPHA = {  # name -> (graphc, torch, forward, gradient of the sum) from PyTorch
    "leaky_relu": (lambda x: gc.leaky_relu(x, alpha=0.0), "leaky_relu",
                   [NAN, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 0]),
    "leaky_relu_int0": (lambda x: gc.leaky_relu(x, 0), "leaky_relu",
                        [NAN, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 0]),
    "elu": (lambda x: gc.elu(x, alpha=0.0), "elu",
            [-0.0, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 1]),
    "prelu": (lambda x: gc.prelu(x, gc.parameter(np.zeros(1, np.float32))), "prelu",
              [NAN, -0.0, -0.0, 0.0, 3.0, INF, NAN], [0, 0, 0, 0, 1, 1, 0]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(ZERO_ALPHA))
def test_zero_alpha_at_minus_inf(backend, name):
    build, _, want_y, want_g = ZERO_ALPHA[name]
    x = gc.placeholder((7,), name="x")
    y = build(x)
    g = gc.grad(gc.sum(y), x)
    out, grad = gc.compile([x], [y, g], backend=backend)(X2)
    close(out, want_y)
    close(grad, want_g)
    # PyTorch computes alpha * x: -0 for negative x
    np.testing.assert_array_equal(np.signbit(out[1:4]), np.signbit(np.array(want_y[1:4])))


@pytest.mark.parametrize("name", list(ZERO_ALPHA))
def test_zero_alpha_expected_match_torch(name):
    torch = torch_or_skip()
    F = torch.nn.functional
    fn = {"leaky_relu": lambda t: F.leaky_relu(t, 0.0), "elu": lambda t: F.elu(t, 0.0),
          "prelu": lambda t: F.prelu(t, torch.zeros(1))}[ZERO_ALPHA[name][1]]
    t = torch.tensor(X2, requires_grad=True)
    y = fn(t)
    y.sum().backward()
    close(y.detach().numpy(), ZERO_ALPHA[name][2])
    np.testing.assert_array_equal(np.signbit(y.detach().numpy()[1:4]),
                                  np.signbit(np.array(ZERO_ALPHA[name][2][1:4])))
    close(t.grad.numpy(), ZERO_ALPHA[name][3])


def test_nonzero_alpha_stays_a_literal():
    # only a zero parameter becomes an operand: leaky_relu(x, 0.2) reads x alone
    x = gc.placeholder((3,), name="x")
    assert list(gc.leaky_relu(x, 0.2).inputs) == [x]
    assert list(gc.elu(x).inputs) == [x]


# -- G3: sums of integers are int64 -------------------------------------------------------------

SUM_DTYPES = ["int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64", "bool", "int64"]


def _int_data(dtype, shape=(4, 3)):
    if dtype == "bool":
        return np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]], bool)
    info = np.iinfo(dtype)
    # the largest values: their sums need more than the input's width
    return np.full(shape, info.max, dtype) - np.arange(12, dtype=dtype).reshape(shape) % 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", SUM_DTYPES)
def test_integer_sum_is_int64(backend, dtype):
    x = gc.placeholder((None, 3), dtype=dtype, name="x")
    outs = [gc.max(x, axis=0), gc.mean(x), gc.sum(x), gc.sum(x, axis=0),
            gc.sum(x, axis=1, keepdims=True)]
    outs += [gc.sum(x, axis=())]  # over no axes: a cast to int64 (exact for uint64 too)
    assert [o.dtype for o in outs] == [dtype, "float32"] + ["int64"] * (len(outs) - 2)
    v = _int_data(dtype)
    got = gc.compile([x], outs, backend=backend)(v)
    assert got[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got[0], v.max(0))
    assert got[1].dtype == np.float32
    np.testing.assert_allclose(got[1], v.astype(np.float64).mean(), rtol=1e-6)
    # exact 64-bit sums (wrapping like PyTorch's int64 for uint64)
    wide = v.astype(np.int64) if dtype != "uint64" else v.astype(np.uint64)
    for g, w in zip(got[2:], [wide.sum(), wide.sum(0), wide.sum(1, keepdims=True), wide]):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, np.asarray(w).astype(np.int64))


def test_int32_sum_past_int32_range():
    x = gc.placeholder((3,), dtype="int32", name="x")
    v = np.array([2**31 - 1, 2**31 - 1, 5], np.int32)
    assert int(gc.compile([x], gc.sum(x))(v)) == 2 * (2**31 - 1) + 5


def test_integer_sum_of_a_scalar_is_int64():
    x = gc.placeholder((), dtype="int16", name="x")
    y = gc.sum(x)
    assert y.dtype == "int64"
    assert gc.compile([x], y)(np.int16(-7)) == -7


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "bool", "int64"])
def test_integer_sum_dtype_matches_torch(dtype):
    torch = torch_or_skip()
    t = torch.from_numpy(_int_data(dtype))
    assert t.sum().dtype == torch.int64 and t.sum(0).dtype == torch.int64
    x = gc.placeholder((4, 3), dtype=dtype, name="x")
    got = gc.compile([x], [gc.sum(x), gc.sum(x, axis=0)])(_int_data(dtype))
    np.testing.assert_array_equal(got[0], t.sum().numpy())
    np.testing.assert_array_equal(got[1], t.sum(0).numpy())
    assert t.amax(0).dtype == getattr(torch, dtype)  # max keeps the dtype, as graphc's


def test_integer_sum_has_no_gradient_and_feeds_float_math():
    x = gc.placeholder((3,), name="x")
    labels = gc.placeholder((3,), dtype="int32", name="labels")
    cost = gc.sum(x) * gc.cast(gc.sum(labels), "float32")
    (g,) = gc.grad(cost, [x])
    got = gc.compile([x, labels], g)(np.ones(3, np.float32), np.array([1, 2, 3], np.int32))
    np.testing.assert_array_equal(got, [6, 6, 6])
    with pytest.raises(gc.ShapeError):
        gc.grad(gc.sum(labels), labels)


# -- G6: an incomplete GRAPHC_KERNELS_DIR ---------------------------------------------------------

def _use_kernels_dir(monkeypatch, path):
    from graphc.runtime import cpu, kernel_files
    if path is None:
        monkeypatch.delenv("GRAPHC_KERNELS_DIR", raising=False)
    else:
        monkeypatch.setenv("GRAPHC_KERNELS_DIR", str(path))
    for f in (kernel_files.kernels_dir, kernel_files.read_kernel, cpu._headers_digest):
        f.cache_clear()


@pytest.mark.parametrize("backend,missing", [
    pytest.param("c", "gc_gemm_core.c", marks=C.marks),
    pytest.param("c", "gc_math.h", marks=C.marks),
    pytest.param("opencl", "gc_gpu_gemm.h", marks=OPENCL.marks)])
def test_incomplete_kernels_dir_is_backend_unavailable(backend, missing, tmp_path, monkeypatch):
    import shutil

    from graphc.runtime.kernel_files import kernels_dir
    for p in kernels_dir().iterdir():
        if p.is_file() and p.name != missing:
            shutil.copy(p, tmp_path / p.name)
    x = gc.placeholder((None, 37), name="x")
    w = gc.parameter(np.ones((37, 41), np.float32))
    try:
        _use_kernels_dir(monkeypatch, tmp_path)
        with pytest.raises(gc.BackendUnavailable) as info:
            gc.compile([x], gc.relu(x @ w), backend=backend)(np.ones((64, 37), np.float32))
        msg = str(info.value)
        assert missing in msg and "GRAPHC_KERNELS_DIR" in msg and str(tmp_path) in msg
    finally:
        _use_kernels_dir(monkeypatch, None)


def test_kernels_dir_that_does_not_exist_is_backend_unavailable(tmp_path, monkeypatch):
    from graphc.runtime.kernel_files import kernels_dir
    try:
        _use_kernels_dir(monkeypatch, tmp_path / "nowhere")
        with pytest.raises(gc.BackendUnavailable, match="GRAPHC_KERNELS_DIR=.*nowhere"):
            kernels_dir()
    finally:
        _use_kernels_dir(monkeypatch, None)
    assert (kernels_dir() / "gc_gemm_core.c").is_file()  # the default is back


# -- G7: from_json type-checks every attribute of graphc's ops -------------------------------------

def _product_graph(op):
    from graphc.ops.registry import make
    from graphc.symbolic import A
    if op == "bmm":
        a = gc.placeholder((2, 3, 4), name="a")
        b = gc.placeholder((2, 5, 4), name="b")
        return [a, b], make("bmm", [a, b], trans_a=False, trans_b=True)
    a = gc.placeholder((4, 3), name="a")
    b = gc.placeholder((5, 4), name="b")
    return [a, b], make("dense", [a, b], trans_a=True, trans_b=True,
                        expr=A[0] * 2, label="dense", dtype="float32")


@pytest.mark.parametrize("op", ["bmm", "dense"])
@pytest.mark.parametrize("bad", ["yes", 2, 1, 0, None, [True], "true", {"$float": "nan"}])
def test_from_json_rejects_non_bool_trans_flags(op, bad):
    import json
    inputs, y = _product_graph(op)
    text = gc.export.to_json([y], inputs)
    ins, outs = gc.export.from_json(text)  # the file as written loads
    assert outs[0].attrs["trans_b"] is True
    for flag in ("trans_a", "trans_b"):
        doc = json.loads(text)
        doc["nodes"][-1]["attrs"][flag] = bad
        with pytest.raises(ValueError, match=flag):
            gc.export.from_json(json.dumps(doc))


def test_from_json_products_round_trip_values():
    import json
    for op in ("bmm", "dense"):
        inputs, y = _product_graph(op)
        ins, outs = gc.export.from_json(gc.export.to_json([y], inputs))
        rng = np.random.RandomState(0)
        feeds = [rng.randn(*p.shape).astype(np.float32) for p in inputs]
        np.testing.assert_allclose(gc.compile(ins, outs[0])(*feeds),
                                   gc.compile(inputs, y)(*feeds), rtol=1e-6)
        assert json.loads(gc.export.to_json(outs, ins))["nodes"][-1]["attrs"]["trans_b"] is True


def _simple_graph():
    x = gc.placeholder((None, 3), name="x")
    y = gc.sum(gc.relu(x) * 2.0, axis=1, keepdims=True)
    g = gc.grad(gc.sum(y), x)
    return x, [y, g]


def test_from_json_rejects_unknown_attributes_of_graphc_ops():
    import json
    x, outs = _simple_graph()
    text = gc.export.to_json(outs, [x])
    gc.export.from_json(text)
    doc = json.loads(text)
    ops = {n["op"] for n in doc["nodes"]}
    assert {"sum", "ew", "fill_like", "broadcast_like"} <= ops
    for i, node in enumerate(doc["nodes"]):
        if node["op"] in ("placeholder", "parameter", "constant"):
            continue
        for key, value in (("label", "x */ evil(); /*"), ("trans_a", True), ("dtype", "int8")):
            if key in node["attrs"]:
                continue
            bad = json.loads(text)
            bad["nodes"][i]["attrs"][key] = value
            with pytest.raises(ValueError, match=f"has no attributes \\['{key}'\\]"):
                gc.export.from_json(json.dumps(bad))


@pytest.mark.parametrize("op,key,bad", [
    ("sum", "keepdims", 1), ("sum", "keepdims", "true"), ("sum", "axes", [True]),
    ("sum", "axes", ["1"]), ("fill_like", "value", "1.0"), ("fill_like", "value", True),
    ("fill_like", "grad_seed", "yes"), ("fill_like", "grad_seed", 1),
    ("ew", "label", 3), ("ew", "dtype", "complex64"), ("ew", "dexpr", "a0"),
    ("ew", "dexpr", [1, 2]),
])
def test_from_json_type_checks_attributes(op, key, bad):
    import json
    x, outs = _simple_graph()
    text = gc.export.to_json(outs, [x])
    doc = json.loads(text)
    idx = [i for i, n in enumerate(doc["nodes"]) if n["op"] == op]
    assert idx
    for i in idx:
        bad_doc = json.loads(text)
        bad_doc["nodes"][i]["attrs"][key] = bad
        with pytest.raises(ValueError):
            gc.export.from_json(json.dumps(bad_doc))


# -- G5: dropout with rate 1 ----------------------------------------------------------------------

X5 = np.array([[1.0, -2.0, NAN, INF], [0.5, -0.0, 3.0, -INF]], np.float32)
DROP_ALL_Y = [[0.0, -0.0, NAN, NAN], [0.0, -0.0, 0.0, NAN]]  # PyTorch: input * 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_rate_one(backend):
    x = gc.placeholder((None, 4), name="x")
    tr = gc.placeholder((), "bool", name="training")
    y = gc.dropout(x, 1.0, training=True)
    y_flag = gc.dropout(x, 1.0, training=tr)
    y_eval = gc.dropout(x, 1.0, training=False)
    assert y_eval is x
    g = gc.grad(gc.sum(y), x)
    g_flag = gc.grad(gc.sum(y_flag), x)
    f = gc.compile([x, tr], [y, g, y_flag, g_flag], backend=backend)
    out, grad, on, grad_on = f(X5, True)
    for o in (out, on):
        close(o, DROP_ALL_Y)
    for gr in (grad, grad_on):
        close(gr, np.zeros_like(X5))
    _, _, off, grad_off = f(X5, False)
    close(off, X5)
    close(grad_off, np.ones_like(X5))


def test_dropout_rate_one_matches_torch():
    torch = torch_or_skip()
    t = torch.tensor(X5, requires_grad=True)
    y = torch.nn.functional.dropout(t, 1.0, True)
    y.sum().backward()
    close(y.detach().numpy(), DROP_ALL_Y)
    close(t.grad.numpy(), np.zeros_like(X5))
    close(torch.nn.Dropout(1.0).eval()(t).detach().numpy(), X5)


def test_dropout_layer_rate_one():
    model = gc.nn.Sequential([gc.nn.Dense(3), gc.nn.Dropout(1.0), gc.nn.Dense(1)], input_dim=2)
    X = np.random.RandomState(0).randn(8, 2).astype(np.float32)
    y = np.ones((8, 1), np.float32)
    before = model.get_weights()
    assert [w.shape for w in before] == [(2, 3), (3,), (3, 1), (1,)]
    hist = model.fit(X, y, loss="mse", optimizer=gc.optim.SGD(lr=0.1), epochs=1, batch_size=8,
                     backend="numpy", progress=False)
    after = model.get_weights()
    # training: the second layer sees zeros, so its output is its bias (0 at first): loss 1
    close(hist["loss"][0], 1.0)
    for b, a in zip(before[:3], after[:3]):  # no gradient through the dropped units
        np.testing.assert_array_equal(a, b)
    close(after[3], before[3] + 0.1 * 2.0)  # d mse / d bias = -2 (1 - 0)
    # prediction: the identity
    h = X @ after[0] + after[1]
    close(model.predict(X), h @ after[2] + after[3], rtol=1e-5)
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError):
            gc.nn.Dropout(bad)


# -- G4: activations of integer tensors ---------------------------------------------------------

X4 = np.array([-2, 0, 3, 100], np.int64)
INT_KEEP = {  # graphc op -> (torch op name, expected values for X4 as the dtype)
    "relu": ("relu", [0, 0, 3, 100]),
    "hard_tanh": ("hardtanh", [-1, 0, 1, 1]),
    "step": ("heaviside", [0, 0, 1, 1]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8"])
@pytest.mark.parametrize("name", list(INT_KEEP))
def test_integer_activations_keep_the_dtype(backend, dtype, name):
    v = X4.astype(dtype)
    x = gc.placeholder((4,), dtype=dtype, name="x")
    if name == "hard_tanh" and dtype == "uint8":
        with pytest.raises(TypeError, match="unsigned"):
            gc.hard_tanh(x)
        return
    y = getattr(gc, name)(x)
    assert y.dtype == dtype
    got = gc.compile([x], y, backend=backend)(v)
    assert got.dtype == np.dtype(dtype)
    want = np.array(INT_KEEP[name][1], np.int64).astype(dtype)
    if dtype == "uint8":  # -2 is 254: positive
        want = {"relu": v, "step": (v > 0).astype(dtype)}[name]
    np.testing.assert_array_equal(got, want)


def test_bool_activations_follow_torch():
    b = gc.placeholder((3,), dtype="bool", name="b")
    for op in (gc.relu, gc.hard_tanh):
        with pytest.raises(TypeError, match="bool"):
            op(b)
    y = gc.step(b)
    assert y.dtype == "bool"
    np.testing.assert_array_equal(gc.compile([b], y)(np.array([True, False, True])),
                                  [True, False, True])


def test_float_activations_still_float():
    x = gc.placeholder((4,), dtype="int32", name="x")
    for name in ("sigmoid", "tanh", "softsign", "exp", "leaky_relu", "elu", "gelu"):
        assert getattr(gc, name)(x).dtype == "float32", name
    f = gc.placeholder((4,), name="f")
    for name in INT_KEEP:
        assert getattr(gc, name)(f).dtype == "float32"
    g = gc.grad(gc.sum(gc.relu(f) + gc.hard_tanh(f)), f)
    close(gc.compile([f], g)(np.array([-2, 0.5, 3, -0.5], np.float32)), [0, 2, 1, 1])


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "bool"])
def test_integer_activation_dtypes_match_torch(dtype):
    torch = torch_or_skip()
    v = X4.astype(dtype)
    t = torch.from_numpy(v)
    x = gc.placeholder((4,), dtype=dtype, name="x")
    for name, (tname, _) in INT_KEEP.items():
        tfn = {"relu": torch.relu, "hardtanh": torch.nn.functional.hardtanh,
               "heaviside": lambda u: torch.heaviside(u, torch.zeros((), dtype=u.dtype))}[tname]
        try:
            want = tfn(t)
        except (RuntimeError, NotImplementedError):
            with pytest.raises(TypeError):
                getattr(gc, name)(x)
            continue
        y = getattr(gc, name)(x)
        assert y.dtype == str(want.dtype).replace("torch.", ""), name
        np.testing.assert_array_equal(gc.compile([x], y)(v), want.numpy())


# -- G4b: float math of small integer types on the numpy reference -------------------------------

SMALL_INT = {"int8": [-2, 0, 3, 100], "uint8": [254, 0, 3, 100], "int16": [-2, 0, 3, 1000]}
FLOAT_OF_INT = {  # torch accepts these on integers (float32 results)
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
    "softsign": lambda v: v / (1 + np.abs(v)), "exp": np.exp,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(SMALL_INT))
def test_float_math_of_small_integers(backend, dtype):
    v = np.array(SMALL_INT[dtype], dtype)
    x = gc.placeholder((4,), dtype=dtype, name="x")
    names = list(FLOAT_OF_INT) + ["elu", "silu", "selu"]
    got = gc.compile([x], [getattr(gc, n)(x) for n in names], backend=backend)(v)
    w = v.astype(np.float64)
    with np.errstate(over="ignore"):
        wants = [FLOAT_OF_INT[n](w) for n in FLOAT_OF_INT] + [
            np.where(w > 0, w, np.expm1(w)), w / (1 + np.exp(-w)),
            1.0507009873554805 * np.where(w > 0, w, 1.6732632423543772 * np.expm1(w))]
    for n, g, want in zip(names, got, wants):
        assert g.dtype == np.float32, n
        with np.errstate(over="ignore"):
            want = want.astype(np.float32)  # exp(100) is inf in float32
        close(g, want, rtol=2e-6)  # float32 math (numpy computed int8 in float16, -uint8 wrapped)


@pytest.mark.parametrize("dtype", list(SMALL_INT))
def test_float_math_of_small_integers_matches_torch(dtype):
    torch = torch_or_skip()
    v = np.array(SMALL_INT[dtype], dtype)
    t = torch.from_numpy(v)
    x = gc.placeholder((4,), dtype=dtype, name="x")
    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "softsign": torch.nn.functional.softsign, "exp": torch.exp}
    got = gc.compile([x], [getattr(gc, n)(x) for n in fns])(v)
    for (n, fn), g in zip(fns.items(), got):
        want = fn(t)
        assert want.dtype == torch.float32
        close(g, want.numpy(), rtol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_casts_between_64_bit_integers_are_exact(backend):
    # a kernel that only converts computes in int64_t, not in double (which rounded values from
    # 2**53 on: uint64 2**60 + 1 came out as 2**60)
    u = gc.placeholder((None,), dtype="uint64", name="u")
    i = gc.placeholder((None,), dtype="int64", name="i")
    U = np.array([2**60 + 1, 2**63 + 5, 2**64 - 1, 7], np.uint64)
    I = np.array([2**60 + 1, -(2**63), -3, 2**53 + 1], np.int64)
    outs = [gc.cast(u, "int64"), gc.cast(i, "uint64"), gc.cast(u, "int32"), gc.cast(i, "uint8"),
            gc.sum(u, axis=())]
    got = gc.compile([u, i], outs, backend=backend)(U, I)
    want = [U.astype(np.int64), I.astype(np.uint64), U.astype(np.int32), I.astype(np.uint8),
            U.astype(np.int64)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)

