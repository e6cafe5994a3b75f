"""An elementwise node read only by a reduction is computed by the reduction
(``lower.FOLD_EW_INTO_REDUCE``, ``lower.Prologue``): the reduction evaluates the node's
expression at each element it loads, and the node's kernel and buffer disappear.

Checked on C and OpenCL (PoCL), folded and unfolded, against the numpy backend: every
reduction of the registry (sum, mean, max, logsumexp; min as -max(-x); there is no prod) over
the first, last and middle axes, all axes and keepdims, with operands broadcast against the reduction's input
(per-row statistics, a bias row, scalars), float64 and int64 data, NaN/inf, odd and large
shapes (the C backend's parallel and chunked paths, the GPU's split path); mse and
binary cross-entropy values and gradients; a layer norm forward and backward (and
gc.check_grad of it); a reduction hosting an optimizer update while computing its input; the
kernel count going down; 1 and 2 threads giving identical bits; the CUDA text compiling with
nvcc.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import graphc as gc
import graphc.lower
from backends import C, OPENCL
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.lower import lower, reduce_read
from graphc.runtime import nvrtc
from graphc.runtime.gpu_common import expand_includes

BACKENDS = [C, OPENCL]
OPS = ["sum", "mean", "max", "logsumexp", "min"]


@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    """PoCL compiles ~3x faster without optimizations (the tests check semantics)."""
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")
    yield
    gc.set_num_threads(0)


def reduce_op(op, t, axis, keepdims=False):
    if op == "min":  # no min in the registry: -max(-x), whose -x is itself a prologue
        return -gc.max(-t, axis=axis, keepdims=keepdims)
    return getattr(gc, op)(t, axis=axis, keepdims=keepdims)


def run(backend, inputs, outputs, feeds, fold, monkeypatch, updates=None):
    """(results, compiled function) of ``backend`` with the fold on or off."""
    monkeypatch.setattr(graphc.lower, "FOLD_EW_INTO_REDUCE", fold)
    f = gc.compile(inputs, outputs, updates=updates or [], backend=backend)
    out = f(*feeds)
    return (out if isinstance(out, list) else [out]), f


def prologue_kernels(f) -> list:
    return [k for k in f._exe._current().lowered.kernels if k.prologue is not None]


def check_both(backend, inputs, outputs, feeds, monkeypatch, rtol=2e-5, atol=1e-6,
               exact=False):
    """Folded and unfolded ``backend`` results against the numpy backend; returns the folded
    function."""
    ref, _ = run("numpy", inputs, outputs, feeds, True, monkeypatch)
    for fold in (False, True):
        got, f = run(backend, inputs, outputs, feeds, fold, monkeypatch)
        assert bool(prologue_kernels(f)) == fold
        for i, (a, b) in enumerate(zip(got, ref)):
            assert a.shape == b.shape and a.dtype == b.dtype, (i, a.shape, b.shape)
            if exact:
                np.testing.assert_array_equal(a, b, err_msg=f"output {i} fold={fold}")
            else:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol,
                                           err_msg=f"output {i} fold={fold}")
    return f


# axes of a (A, B, C) input: first, last, middle, first and last, all
AXES = [(0, False), (-1, False), (1, False), ((0, 2), False), (None, False), (-1, True),
        (0, True), (None, True)]


def broadcast_program(ops, shape, dtype="float32", seed=0):
    """Reductions of x * s - mu + b (and exp / tanh of it) for every axis layout: mu a per-row
    statistic (A, B, 1), b a row (C,), s a scalar; every output has its own elementwise node
    (a distinct constant), so each is read by one reduction only."""
    rng = np.random.default_rng(seed)
    a, b_, c = shape
    x = gc.placeholder(shape, dtype, name="x")
    mu = gc.placeholder((a, b_, 1), dtype, name="mu")
    bias = gc.placeholder((c,), dtype, name="bias")
    outs = []
    for op in [ops] if isinstance(ops, str) else ops:
        for i, (axis, keep) in enumerate(AXES):
            e = x * 0.5 - mu + bias * (i + 1)
            if dtype != "int64":
                e = gc.tanh(e) + i if op in ("sum", "mean") else e * (1 + 0.25 * i)
            outs.append(reduce_op(op, e, axis, keep))
    feeds = [rng.standard_normal(s) if dtype != "int64" else rng.integers(-50, 50, s)
             for s in (shape, (a, b_, 1), (c,))]
    return [x, mu, bias], outs, [v.astype(dtype) for v in feeds]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", [(3, 17, 33), (1, 3, 17)])
def test_broadcast_operands_every_axis(backend, op, shape, monkeypatch):
    inputs, outs, feeds = broadcast_program(op, shape)
    f = check_both(backend, inputs, outs, feeds, monkeypatch)
    # every reduction computes its input (min: the max computes -e)
    assert len(prologue_kernels(f)) == len(AXES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_float64(backend, op, monkeypatch):
    inputs, outs, feeds = broadcast_program(op, (5, 7, 33), "float64")
    check_both(backend, inputs, outs, feeds, monkeypatch, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_int64_exact(backend, monkeypatch):
    # integer arithmetic in the prologue, integer accumulators (sum: wrapping uint64, max:
    # the input type); mean and logsumexp of integers compute in float
    inputs, outs, feeds = broadcast_program(["sum", "max", "min"], (4, 9, 17), "int64")
    check_both(backend, inputs, outs, feeds, monkeypatch, exact=True)
    inputs, outs, feeds = broadcast_program("mean", (4, 9, 17), "int64")
    check_both(backend, inputs, outs, feeds, monkeypatch, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_and_mixed_dtypes(backend, monkeypatch):
    # a comparison (bool node) counted by a sum (int64); a float64 operand in a float32 kernel
    # and a broadcast_like (a per-row value spread over the row) computed by a max
    x = gc.placeholder((17, 33), name="x")
    w = gc.placeholder((33,), "float64", name="w")
    r = gc.placeholder((17, 1), name="r")
    outs = [gc.sum(gc.greater(x, 0.25), axis=0), gc.sum(gc.less(x, 0.0)),
            gc.mean(gc.cast(x, "float64") * w, axis=1), gc.max(gc.cast(x * 3, "int64"), axis=1),
            gc.max(gc.broadcast_like(r, x), axis=0)]
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal((17, 33)).astype("float32"), rng.standard_normal(33),
             rng.standard_normal((17, 1)).astype("float32")]
    f = check_both(backend, [x, w, r], outs, feeds, monkeypatch, rtol=1e-6)
    assert {k.prologue.node.op for k in prologue_kernels(f)} == {"ew", "broadcast_like"}
    assert len(prologue_kernels(f)) == len(outs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_and_inf(backend, monkeypatch):
    inputs, outs_all, feeds = broadcast_program(OPS, (3, 17, 33))
    x, mu, bias = feeds
    x[0, 0, 0], x[1, 5, 7], x[2, 3, :] = np.nan, np.inf, -np.inf
    mu[1, 2, 0] = np.inf
    check_both(backend, inputs, outs_all, [x, mu, bias], monkeypatch)


# large: parallel by outputs, blocks x chunks, one row chunked (C); split reductions (GPU)
LARGE = [((64, 40, 130), [(0, False), (-1, False), (1, False), (None, False)]),
         ((9000, 3, 5), [(0, False), ((0, 1), True)])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sum", "max", "logsumexp"])
def test_large_parallel_and_split(backend, op, monkeypatch):
    rng = np.random.default_rng(3)
    inputs, outs, feeds = [], [], []
    for n, (shape, axes) in enumerate(LARGE):
        x = gc.placeholder(shape, name=f"x{n}")
        b = gc.placeholder(shape[-1:], name=f"b{n}")
        inputs += [x, b]
        feeds += [rng.standard_normal(shape).astype("float32"),
                  rng.standard_normal(shape[-1]).astype("float32")]
        for i, (axis, keep) in enumerate(axes):
            e = x - b * (i + 1)  # logsumexp folds arithmetic only (see the next test)
            outs.append(reduce_op(op, gc.tanh(e) if op != "logsumexp" else e * 0.5, axis, keep))
    check_both(backend, inputs, outs, feeds, monkeypatch, rtol=1e-4, atol=1e-4)


def test_logsumexp_folds_arithmetic_only():
    # logsumexp reads each element twice (max, then exponentials): a libm call in the
    # expression would run twice, costing more than the buffer
    x = gc.placeholder((8, 9), name="x")
    y = gc.placeholder((8, 9), name="y")
    f = gc.compile([x, y], [gc.logsumexp(x * y - 1, axis=1), gc.logsumexp(gc.tanh(x) * y),
                            gc.max(gc.tanh(x + y), axis=0)], backend="numpy")
    low = lower(f.program, [(8, 9), (8, 9)])
    folded = {k.node.op: k.prologue.node.attrs["expr"] for k in low.kernels if k.prologue}
    assert set(folded) == {"logsumexp", "max"} and not folded["logsumexp"].has(sympy.tanh)


def test_c_parallel_bits_same_for_1_and_2_threads(monkeypatch):
    rng = np.random.default_rng(4)
    x = gc.placeholder((300, 400), name="x")
    m = gc.placeholder((300, 1), name="m")
    # distinct expressions (equal ones would be one node after CSE, read by several)
    outs = [gc.sum((x - m) ** 2), gc.mean((x + m) * 0.5, axis=0), gc.logsumexp(x * m),
            gc.max(x - 2 * m, axis=1), gc.sum(gc.exp(x * 0.1 - m), axis=0)]
    feeds = [rng.standard_normal((300, 400)).astype("float32"),
             rng.standard_normal((300, 1)).astype("float32")]
    monkeypatch.setattr(graphc.lower, "FOLD_EW_INTO_REDUCE", True)
    f = gc.compile([x, m], outs, backend="c")
    assert len(prologue_kernels_of(f, [(300, 400), (300, 1)])) == len(outs)
    results = []
    for threads in (1, 2, 1):
        gc.set_num_threads(threads)
        results.append(f(*feeds))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    ref, _ = run("numpy", [x, m], outs, feeds, True, monkeypatch)
    for a, b in zip(results[0], ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def prologue_kernels_of(f, shapes) -> list:
    return [k for k in lower(f.program, shapes).kernels if k.prologue is not None]


# -- losses ---------------------------------------------------------------------------------------

def loss_graph(kind):
    x = gc.placeholder((None, 10), name="pred")
    y = gc.placeholder((None, 10), name="target")
    w = gc.parameter(np.linspace(0.5, 1.5, 10).astype("float32"), name="w")
    h = x * w
    if kind == "mse":
        loss = gc.mse(h, y)
    elif kind == "bce":
        loss = gc.binary_cross_entropy(gc.sigmoid(h), y)
    else:
        loss = gc.binary_cross_entropy_with_logits(h, y)
    return [x, y], [loss] + gc.grad(loss, [x, w]), w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["mse", "bce", "bce_logits"])
def test_losses_and_gradients(backend, kind, monkeypatch):
    inputs, outs, _ = loss_graph(kind)
    rng = np.random.default_rng(5)
    feeds = [rng.standard_normal((33, 10)).astype("float32"),
             rng.random((33, 10)).astype("float32")]
    check_both(backend, inputs, outs, feeds, monkeypatch, rtol=1e-5, atol=1e-6)


def kernel_counts(inputs, outs, shapes, lower_fn=lower, updates=None):
    f = gc.compile(inputs, outs, updates=updates or [], backend="numpy")
    return (len(lower_fn(f.program, shapes, fold_ew_into_reduce=False).kernels),
            len(lower_fn(f.program, shapes, fold_ew_into_reduce=True).kernels))


def test_mse_kernel_count():
    inputs, outs, _ = loss_graph("mse")
    before, after = kernel_counts(inputs, outs, [(256, 10), (256, 10)])
    # the squared differences (the loss's mean) and w's gradient terms (its column sum)
    assert before - after == 2, (before, after)


# -- layer norm -----------------------------------------------------------------------------------

def layer_norm(x, g, b, eps=1e-5):
    mu = gc.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = gc.mean(xc * xc, axis=-1, keepdims=True)
    return xc / gc.sqrt(var + eps) * g + b


def np_layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def layer_norm_program(shape, seed=6):
    rng = np.random.default_rng(seed)
    x = gc.placeholder(shape, name="x")
    dy = gc.placeholder(shape, name="dy")
    g = gc.parameter((1 + 0.1 * rng.standard_normal(shape[-1])).astype("float32"), name="g")
    b = gc.parameter((0.1 * rng.standard_normal(shape[-1])).astype("float32"), name="b")
    y = layer_norm(x, g, b)
    cost = gc.sum(y * dy)  # the backward pass of a given upstream gradient dy
    feeds = [rng.standard_normal(shape).astype("float32"),
             rng.standard_normal(shape).astype("float32")]
    return [x, dy], [y] + gc.grad(cost, [x, g, b]), (x, dy, g, b, cost), feeds


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 17, 33), (4, 5, 128)])
def test_layer_norm_forward_backward(backend, shape, monkeypatch):
    inputs, outs, (x, dy, g, b, cost), feeds = layer_norm_program(shape)
    f = check_both(backend, inputs, outs, feeds, monkeypatch, rtol=1e-4, atol=1e-5)
    y = f(*feeds)[0]
    np.testing.assert_allclose(y, np_layer_norm(feeds[0].astype(np.float64), g.value, b.value),
                               rtol=1e-4, atol=1e-5)


def test_layer_norm_check_grad():
    inputs, outs, (x, dy, g, b, cost), feeds = layer_norm_program((2, 3, 7))
    gc.check_grad(cost, [x, g, b], dict(zip(inputs, feeds)))


def test_layer_norm_backward_kernel_count():
    inputs, outs, _, _ = layer_norm_program((32, 128, 512))
    shapes = [(32, 128, 512)] * 2
    before, after = kernel_counts(inputs, outs[1:], shapes)
    assert after <= before - 4, (before, after)
    before_gpu, after_gpu = kernel_counts(inputs, outs[1:], shapes, lower_gpu_flag)
    assert (before_gpu, after_gpu) == (before, after)


def lower_gpu_flag(program, shapes, fold_ew_into_reduce):
    """``lower_gpu`` with the fold set (lower_gpu takes the module default)."""
    saved = graphc.lower.FOLD_EW_INTO_REDUCE
    graphc.lower.FOLD_EW_INTO_REDUCE = fold_ew_into_reduce
    try:
        return lower_gpu(program, shapes)
    finally:
        graphc.lower.FOLD_EW_INTO_REDUCE = saved


# -- what may not fold ----------------------------------------------------------------------------

def test_outputs_and_other_readers_stay_materialized():
    x = gc.placeholder((17, 33), name="x")
    e1 = x * 2 + 1                      # a program output too
    e2 = gc.exp(x)                      # read by two reductions
    e3 = gc.tanh(x)                     # read through a view by a reduction and by an ew
    outs = [gc.sum(e1), e1, gc.sum(e2, axis=0), gc.max(e2, axis=1),
            gc.sum(gc.reshape(e3, (33, 17)), axis=1), e3 * 3]
    f = gc.compile([x], outs, backend="numpy")
    low = lower(f.program, [(17, 33)])
    assert not [k for k in low.kernels if k.prologue is not None]


def test_argument_limit(monkeypatch):
    # a reduction computing an elementwise node passes its operands as buffers: no more than
    # MAX_FOLDED_ARGS with its output (lowered to 5 here: fusion caps a node's operands first)
    xs = [gc.placeholder((5, 7), name=f"x{i}") for i in range(6)]
    total = xs[0]
    for t in xs[1:]:
        total = total + t
    f = gc.compile(xs, [gc.sum(total * 2, axis=0), gc.sum(xs[0] * xs[1] + xs[2], axis=1)],
                   backend="numpy")
    monkeypatch.setattr(graphc.lower, "MAX_FOLDED_ARGS", 5)
    low = lower(f.program, [(5, 7)] * 6)
    folded = [k for k in low.kernels if k.prologue is not None]
    assert [len(reduce_read(k).operands) for k in folded] == [3]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size(backend, monkeypatch):
    x = gc.placeholder((0, 5), name="x")
    b = gc.placeholder((5,), name="b")
    outs = [gc.sum(x * b, axis=0), gc.sum(x - b, axis=1), gc.mean(x + b, axis=0),
            gc.sum(gc.exp(x) * 2)]
    check_both(backend, [x, b], outs, [np.zeros((0, 5), "float32"), np.ones(5, "float32")],
               monkeypatch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_views_between_node_and_reduction(backend, monkeypatch):
    # full-shape operands: folded through the reshape; a broadcast operand: not folded
    x = gc.placeholder((12, 10), name="x")
    y = gc.placeholder((12, 10), name="y")
    r = gc.placeholder((12, 1), name="r")
    outs = [gc.max(gc.reshape(x * y - 0.5, (12, 5, 2)), axis=-1),
            gc.sum(gc.reshape(x * 3 - r, (4, 3, 10)), axis=1)]
    rng = np.random.default_rng(7)
    feeds = [rng.standard_normal(s).astype("float32") for s in ((12, 10), (12, 10), (12, 1))]
    f = check_both(backend, [x, y, r], outs, feeds, monkeypatch)
    (k,) = prologue_kernels(f)
    assert k.node.op == "max"


# -- optimizer updates hosted by a folding reduction ----------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_reduction_hosts_updates_and_computes_its_input(backend, opt, monkeypatch):
    from backends import reductions_hosting_updates
    rng, X, g, updates = reductions_hosting_updates()
    # and a bias whose gradient is a column sum of exp(x): hosts its update, folds exp(x)
    x = gc.placeholder((40, 6), name="x2")
    bias = gc.parameter(rng.randn(6).astype("float32"), name="bias")
    cost = gc.sum(gc.exp(x * 0.5) * bias)
    opt_ = gc.optim.SGD(0.1) if opt == "sgd" else gc.optim.Adam(1e-2)
    updates = updates + opt_.updates([bias], gc.grad(cost, [bias]))
    feeds = [(rng.randn(5, 3).astype("float32"), rng.randn(40, 6).astype("float32"))
             for _ in range(3)]
    state = [p for p, _ in updates]
    init = [p.value.copy() for p in state]
    finals = {}
    for be, fold in (("numpy", True), (backend, False), (backend, True)):
        for p, v in zip(state, init):
            p.value = v.copy()
        monkeypatch.setattr(graphc.lower, "FOLD_EW_INTO_REDUCE", fold)
        f = gc.compile([X, x], [g, cost], updates=updates, backend=be)
        outs = [f(*fd) for fd in feeds]
        finals[be, fold] = (outs, [p.value.copy() for p in state])
        if be != "numpy" and fold:
            low = f._exe._current().lowered
            both = [k for k in low.kernels if k.prologue is not None and k.members]
            assert len(both) >= 2, [k.name for k in low.kernels]
    ref_outs, ref_state = finals["numpy", True]
    for key in ((backend, False), (backend, True)):
        outs, st = finals[key]
        for o, r in zip(outs, ref_outs):
            for a, b in zip(o, r):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=str(key))
        for a, b, p in zip(st, ref_state, state):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{key} {p.name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_prologue_reading_an_updated_parameter(backend, monkeypatch):
    # b's gradient sums x * b over rows and b's update is hosted by that sum: the sum must
    # not also compute x * b (its tasks would read b while others store its new values)
    x = gc.placeholder((50, 4), name="x")
    b = gc.parameter(np.linspace(-1, 1, 4).astype("float32"), name="b")
    cost = gc.sum((x * b) ** 2) * 0.5
    updates = gc.optim.SGD(0.01).updates([b], gc.grad(cost, [b]))
    rng = np.random.default_rng(8)
    feeds = [rng.standard_normal((50, 4)).astype("float32") for _ in range(3)]
    finals = []
    for be in ("numpy", backend):
        b.value = np.linspace(-1, 1, 4).astype("float32")
        f = gc.compile([x], cost, updates=updates, backend=be)
        finals.append(([f(v) for v in feeds], b.value.copy()))
        if be != "numpy":
            for k in f._exe._current().lowered.kernels:
                if k.prologue is not None and k.members:
                    written = {m.dst for m in k.members if m.in_place}
                    assert not written & set(reduce_read(k).operands[j][1]
                                             for j in range(len(reduce_read(k).operands)))
    np.testing.assert_allclose(finals[1][0], finals[0][0], rtol=1e-4)
    np.testing.assert_allclose(finals[1][1], finals[0][1], rtol=1e-4, atol=1e-6)


# -- the lowering's description and the CUDA text -------------------------------------------------

def test_reduce_read_strides_and_merging():
    x = gc.placeholder((4, 5, 6), name="x")
    m = gc.placeholder((4, 5, 1), name="m")
    b = gc.placeholder((6,), name="b")
    f = gc.compile([x, m, b], [gc.sum(x * b - m, axis=0), gc.sum((x - m) * 2, axis=2)],
                   backend="numpy")
    low = lower(f.program, [(4, 5, 6), (4, 5, 1), (6,)])
    reads = {k.node.attrs["axes"]: reduce_read(k) for k in low.kernels if k.kind == "reduce"}
    col, row = reads[(0,)], reads[(2,)]
    # over axis 0, kept (5, 6): m walks 5 but not 6, b walks 6 but not 5 -> two kept groups
    assert col.groups == [[True, 4], [False, 5], [False, 6]]
    strides = {t.name: s for (t, _), s in zip(col.operands, col.strides)}
    assert strides == {"x": [30, 6, 1], "b": [0, 0, 1], "m": [5, 1, 0]}
    # over axis 2: (4, 5) kept merge (both walk them contiguously)
    assert row.groups == [[False, 20], [True, 6]]


@pytest.mark.skipif(nvrtc.nvcc_path() is None, reason="nvcc not found")
def test_cuda_text_compiles_with_nvcc():
    programs = []
    for op in OPS:
        inputs, outs, feeds = broadcast_program(op, (3, 17, 33))
        programs.append((f"bcast_{op}", inputs, outs, [a.shape for a in feeds]))
    inputs, outs, _, feeds = layer_norm_program((4, 5, 128))
    programs.append(("layer_norm", inputs, outs, [a.shape for a in feeds]))
    inputs, outs, feeds = broadcast_program("sum", (9000, 3, 5), "float64")
    programs.append(("split_f64", inputs, outs, [a.shape for a in feeds]))
    inputs, outs, feeds = broadcast_program("max", (4, 9, 17), "int64")
    programs.append(("int64", inputs, outs, [a.shape for a in feeds]))
    for i, (name, inputs, outs, shapes) in enumerate(programs):
        f = gc.compile(inputs, outs, backend="numpy")
        low = lower_gpu(f.program, shapes)
        assert any(k.prologue is not None for k in low.kernels), name
        text, launches = render_gpu(low)
        # nvcc for the first, NVRTC (the same front end, a fraction of the time) for the rest
        via = "nvcc" if i == 0 or not nvrtc.nvrtc_available() else "nvrtc"
        cubin = nvrtc.compile_cubin(expand_includes(text), name, arch="sm_90", backend=via)
        assert cubin[:4] == b"\x7fELF"
        for fn in {la.function for la in launches}:
            assert fn.encode() in cubin, f"{name}: kernel {fn} missing from the cubin"


def test_cache_fingerprint_includes_the_prologue():
    # two reductions differing only in the expression they compute lower to kernels of the
    # same names, shapes and buffers: the warm-load key must still tell them apart
    from graphc.runtime.cpu import lowered_fingerprint
    x = gc.placeholder((6, 5), name="x")
    keys, values = [], []
    for c in (2.0, 3.0):
        f = gc.compile([x], gc.sum(x * c, axis=0), backend="c")
        values.append(f(np.ones((6, 5), "float32")))
        keys.append(lowered_fingerprint(f._exe._current().lowered))
    assert keys[0] != keys[1]
    np.testing.assert_array_equal(values[1], np.full(5, 18.0, "float32"))
