"""The GPU backends against the numpy reference, run on OpenCL (PoCL on the CPU in CI) and, on
a machine with an NVIDIA GPU and CuPy, on CUDA (``-m cuda``).

PoCL compiles every kernel on its first launch (~0.2 s each, cached on disk afterwards in
``~/.cache/pocl``), so cases are batched: one compiled function computes many ops at once (each
op's inputs are placeholders of their own, each output is compared with the numpy backend run
on the same inputs).  The default run covers every op of API.md forward and backward on odd
shapes (1, 3, 17, 33, 100+) plus whole training steps; ``-m slow`` sweeps the whole op table
(tests/op_cases.py) with every shape it lists.

On a machine with an NVIDIA GPU and CuPy, the same checks on CUDA are one command::

    pytest -m "cuda or not cuda" tests/test_gpu_backend.py tests/test_gpu_runtime.py
    python benchmarks/bench_gpu.py          # fused dense / training step vs CuPy, cuBLAS, torch
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import BackendUnavailable
from backends import CUDA, OPENCL, call_from_threads
from op_cases import (BINARY_SHAPES, CASES, TERNARY_SHAPES, UNARY_SHAPES, by_id,
                      placeholders_for, sample_inputs, weighted_cost)


BACKENDS = [OPENCL, CUDA]

# Odd shapes per op family (in addition to, or instead of, a case's own table shapes).
ODD = {
    "unary": [((17, 33),), ((1, 130),), ((3,),)],
    "binary": [((17, 33), (33,)), ((100, 1), (1, 17)), ((3, 1, 5), (17, 1))],
    "ternary": [((33, 17), (17,), (33, 1))],
    "reduce": [((33, 17, 130),), ((1, 3, 17),)],
    "reduce_flat": [((1000,),)],
    "matmul": [((17, 33), (33, 100)), ((3, 17, 33), (33, 5)), ((2, 1, 17, 33), (3, 33, 1)),
               ((33,), (33, 17)), ((130, 1), (1, 3))],
    "softmax": [((17, 33),), ((3, 100, 5),)],
    "loss": [((17, 33), (17, 33)), ((100,), (100,)), ((33, 3), (3,))],
    "xent": [((130, 5), (130,)), ((17, 5), (17,))],
    "maxout_last": [((17, 6),), ((3, 5, 6),)],
    "maxout_first": [((6, 17),)],
    "maxout_6": [((17, 6),), ((3, 6, 5),)],
    "prelu": [((17, 33), (33,)), ((100, 3), ())],
    "transpose": [((17, 33, 3),), ((1, 100, 3),)],
}


def odd_shapes(case) -> list:
    """Odd shapes for ``case`` (its own first shape when the family has none)."""
    cid = case.id
    n = len(case.domains)
    if cid.startswith(("sum(", "mean(", "max(", "logsumexp(")):
        out = list(ODD["reduce"])
        if "axis=None" in cid or "axis=0," in cid:
            out += ODD["reduce_flat"]
        return out
    if cid == "matmul":
        return ODD["matmul"]
    if cid.startswith(("softmax", "log_softmax")):
        return ODD["softmax"]
    if cid.startswith(("mse", "binary_cross_entropy")):
        return ODD["loss"]
    if cid.startswith("cross_entropy("):
        return ODD["xent"]
    if cid.startswith("maxout"):
        if "pieces=6" in cid:
            return ODD["maxout_6"]
        return ODD["maxout_first"] if "axis=0" in cid else ODD["maxout_last"]
    if cid == "prelu":
        return ODD["prelu"]
    if cid.startswith("transpose") and case.shapes[0] == ((2, 3, 4),):
        return ODD["transpose"]
    shapes = list(case.shapes)
    if shapes == UNARY_SHAPES:
        return ODD["unary"]
    if shapes == BINARY_SHAPES:
        return ODD["binary"]
    if shapes == TERNARY_SHAPES:
        return ODD["ternary"]
    return [case.shapes[0]]


def _grad_tol(case, dtype):
    return (2e-3, 2e-4) if dtype == "float32" else (1e-8, 1e-10)


def _fwd_tol(case, dtype):
    rtol, atol = case.tol32 if dtype == "float32" else case.tol64
    return max(rtol, 1e-5) * 5, max(atol, 1e-6) * 5


def run_group(items, backend, dtype="float32", grads=False, seed=0):
    """Compile all ``items`` ((case, shapes) pairs) as ONE function on ``backend`` and on numpy,
    call both on the same inputs and compare every output."""
    phs_all, arrays_all, outs, labels, tols = [], [], [], [], []
    rng = np.random.default_rng(seed + 1)
    for j, (case, shapes) in enumerate(items):
        arrays = sample_inputs(case, shapes, dtype, seed + j)
        phs = placeholders_for(arrays)
        for p, k in zip(phs, range(len(phs))):
            p._name = f"c{j}_in{k}"
        out = case.build(*phs)
        if grads:
            idx = case.grad_inputs()
            if not idx:
                continue
            cost, _ = weighted_cost(out, rng)
            gs = gc.grad(cost, [phs[i] for i in idx])
            outs += gs
            labels += [f"{case.id} {shapes} d/d input{i}" for i in idx]
            tols += [_grad_tol(case, dtype)] * len(gs)
        else:
            outs.append(out)
            labels.append(f"{case.id} {shapes}")
            tols.append(_fwd_tol(case, dtype))
        phs_all += phs
        arrays_all += arrays
    if not outs:
        return
    ref = gc.compile(phs_all, outs, backend="numpy")(*arrays_all)
    f = gc.compile(phs_all, outs, backend=backend)
    got = f(*arrays_all)
    assert len(got) == len(outs)
    failures = []
    for g, r, label, (rtol, atol), o in zip(got, ref, labels, tols, outs):
        if g.shape != r.shape or g.dtype != r.dtype:
            failures.append(f"{label}: shape/dtype {g.shape} {g.dtype} vs numpy {r.shape} "
                            f"{r.dtype}")
            continue
        if g.dtype == bool:
            if not np.array_equal(g, r):
                failures.append(f"{label}: boolean results differ")
            continue
        scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
        err = np.abs(g.astype(np.float64) - r.astype(np.float64))
        bad = err > atol * scale + rtol * np.abs(r.astype(np.float64))
        if bad.any() or (np.isnan(g) != np.isnan(r)).any():
            i = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape) \
                if err.ndim else ()
            failures.append(f"{label}: max error {np.nanmax(err) if err.size else 0:.3g} at {i}"
                            f" (got {g[i] if g.ndim else g}, numpy {r[i] if r.ndim else r})")
    assert not failures, f"{backend} differs from numpy:\n" + "\n".join(failures)


# -- every op, forward and backward, odd shapes (default run) ------------------------------------

@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    """Build with -cl-opt-disable: PoCL then compiles ~3x faster.  The tests check the generated
    source's semantics; one training test removes it to run the default (optimized) build."""
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")

# one representative case id per op family of API.md (the slow sweep covers every case)
CORE = ["add", "sub", "mul", "div", "neg", "pow", "pow_scalar_exponent", "matmul", "transpose",
        "transpose_axes(2, 0, 1)", "reshape(4, -1)", "exp", "log", "sqrt", "abs", "cos", "sin",
        "square", "maximum", "minimum", "where", "greater", "less", "equal",
        "sum(axis=None,keepdims=False)", "sum(axis=0,keepdims=False)",
        "sum(axis=(0, 2),keepdims=True)", "mean(axis=-1,keepdims=True)",
        "mean(axis=1,keepdims=False)", "max(axis=None,keepdims=True)",
        "max(axis=(0, 2),keepdims=False)", "logsumexp(axis=-1,keepdims=True)",
        "logsumexp(axis=0,keepdims=False)", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
        "selu", "softplus", "hard_tanh", "softsign", "silu", "mish", "gelu",
        "gelu(approximate=tanh)", "step", "prelu", "maxout(pieces=3,axis=-1)",
        "maxout(pieces=2,axis=0)", "softmax(axis=-1)", "softmax(axis=0)", "log_softmax(axis=1)",
        "mse(mean)", "binary_cross_entropy(sum)", "binary_cross_entropy_with_logits(none)",
        "cross_entropy(mean)", "cross_entropy(none)", "l1_penalty", "l2_penalty",
        "dropout(training=False)", "batch_norm(training=False)", "batch_norm(training=True)"]


def _core_items(n_shapes):
    items = []
    for cid in CORE:
        case = by_id(cid)
        shapes = odd_shapes(case)
        items += [(case, s) for s in shapes[:n_shapes]]
    return items


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_forward_odd_shapes(backend, ):
    run_group(_core_items(2), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_backward_odd_shapes(backend, ):
    run_group(_core_items(1), backend, grads=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_backward_more_odd_shapes(backend, ):
    run_group([it for it in _core_items(3) if it not in _core_items(1)], backend, grads=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_ops(backend, ):
    items = [(by_id(c), odd_shapes(by_id(c))[0]) for c in
             ("gelu", "softplus", "sum(axis=0,keepdims=False)", "logsumexp(axis=-1,keepdims=True)",
              "matmul", "log_softmax(axis=-1)", "cross_entropy(mean)", "pow")]
    run_group(items, backend, dtype="float64")
    run_group(items, backend, dtype="float64", grads=True)


# -- the whole table (slow) ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_table_sweep(backend, case, ):
    items = [(case, s) for s in list(case.shapes) + [s for s in odd_shapes(case)
                                                      if s not in case.shapes]]
    run_group(items, backend)
    run_group(items, backend, grads=True)


# -- big reductions and GEMM edge shapes --------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_large_reductions_and_gemm(backend, ):
    rng = np.random.default_rng(3)
    x = gc.placeholder((None, 300), name="x")
    w = gc.placeholder((300, 257), name="w")
    a = gc.placeholder((3, 129, 17), name="a")
    b = gc.placeholder((17, 130), name="b")
    z = gc.placeholder((9001, 5), name="z")
    # (sums over >= 8192 elements with few outputs take the two-pass split path)
    outs = [gc.sum(x, axis=0), gc.mean(x, axis=1), gc.max(x), gc.logsumexp(x, axis=0),
            gc.softmax(x, axis=0), gc.log_softmax(x), gc.relu(x @ w + 1.0),
            gc.transpose(x) @ x, a @ b, gc.sum(gc.transpose(a, (2, 0, 1)), axis=(1, 2)),
            gc.mean(x), gc.sum(z, axis=0), gc.max(z, axis=0, keepdims=True),
            gc.sum(gc.transpose(z), axis=1)]
    X = rng.standard_normal((1000, 300)).astype(np.float32)
    W = rng.standard_normal((300, 257)).astype(np.float32)
    Aa = rng.standard_normal((3, 129, 17)).astype(np.float32)
    Bb = rng.standard_normal((17, 130)).astype(np.float32)
    Z = rng.standard_normal((9001, 5)).astype(np.float32)
    ref = gc.compile([x, w, a, b, z], outs, backend="numpy")(X, W, Aa, Bb, Z)
    f = gc.compile([x, w, a, b, z], outs, backend=backend)
    got = f(X, W, Aa, Bb, Z)
    assert any(n.endswith("_part") for n in (la.function for la in f._exe.launches))
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4 * max(1, np.abs(r).max()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_64bit_index_path(backend, monkeypatch):
    """Kernels over more than 2**31 elements use 64-bit index math: force it on small shapes."""
    from graphc.codegen.gpu import GPURenderer
    monkeypatch.setattr(GPURenderer, "_wide", staticmethod(lambda n: True))
    items = [(by_id(c), odd_shapes(by_id(c))[0]) for c in
             ("add", "where", "transpose_axes(2, 0, 1)", "sum(axis=(0, 2),keepdims=True)",
              "logsumexp(axis=-1,keepdims=True)", "softmax(axis=0)", "cross_entropy(mean)")]
    run_group(items, backend)
    run_group(items, backend, grads=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_values(backend):
    """NaN/inf handling matches numpy: softmax/logsumexp of -inf rows, NaN propagation in max,
    cross_entropy's NaN for an out-of-range label is caught before running."""
    x = gc.placeholder((3, 4), name="x")
    outs = [gc.logsumexp(x, axis=1), gc.max(x, axis=1), gc.softmax(x, axis=1)]
    X = np.array([[-np.inf] * 4, [1.0, np.nan, 2.0, 0.0], [np.inf, 1.0, 2.0, 3.0]],
                 dtype=np.float32)
    ref = gc.compile([x], outs, backend="numpy")(X)
    got = gc.compile([x], outs, backend=backend)(X)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_allclose(np.nan_to_num(g), np.nan_to_num(r), rtol=1e-6)
    logits = gc.placeholder((None, 5), name="logits")
    y = gc.placeholder((None,), dtype="int64", name="y")
    f = gc.compile([logits, y], gc.cross_entropy(logits, y), backend=backend)
    with pytest.raises(ValueError, match="labels"):
        f(np.zeros((2, 5), np.float32), np.array([0, 5]))


# -- training steps ---------------------------------------------------------------------------

def _mlp(seed, sizes=(784, 33, 10), dropout=False, batch_norm=False, opt="adam"):
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, sizes[0]), name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    params = []
    h = x
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = gc.parameter((rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in))
                         .astype(np.float32), name=f"W{i}")
        b = gc.parameter(np.zeros(n_out, np.float32), name=f"b{i}")
        params += [W, b]
        h = h @ W + b
        if i < len(sizes) - 2:
            if batch_norm:
                g = gc.parameter(np.ones(n_out, np.float32), name=f"gamma{i}")
                be = gc.parameter(np.zeros(n_out, np.float32), name=f"beta{i}")
                rm = gc.parameter(np.zeros(n_out, np.float32), name=f"rm{i}", trainable=False)
                rv = gc.parameter(np.ones(n_out, np.float32), name=f"rv{i}", trainable=False)
                params += [g, be]
                h = gc.batch_norm(h, g, be, rm, rv, training=True)
            h = gc.relu(h)
            if dropout:
                h = gc.dropout(h, 0.25, training=True, seed=7)
    loss = gc.cross_entropy(h, y)
    grads = gc.grad(loss, params)
    optimizer = {"adam": gc.optim.Adam(1e-2), "sgd": gc.optim.SGD(0.1),
                 "momentum": gc.optim.SGD(0.05, momentum=0.9, nesterov=True),
                 "rmsprop": gc.optim.RMSProp(1e-3)}[opt]
    return x, y, params, loss, h, optimizer.updates(params, grads)


def _batches(n_steps, batch, seed=5):
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch))
            for _ in range(n_steps)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt,extras", [
    ("adam", {"optimized": True}),
    ("momentum", {}), ("rmsprop", {}), ("sgd", {"batch_norm": True}),
    ("sgd", {"dropout": True})])
def test_training_steps_match_numpy(backend, opt, extras, monkeypatch):
    extras = dict(extras)
    if extras.pop("optimized", False):
        monkeypatch.delenv("GRAPHC_OPENCL_OPTIONS")
    # two specializations (batch sizes) for momentum, one for the others (PoCL compiles slowly)
    data = _batches(3, 17) + (_batches(2, 100, seed=9) if opt == "momentum" else [])
    runs = {}
    for be in ("numpy", backend):
        x, y, params, loss, _, updates = _mlp(0, opt=opt, **extras)
        f = gc.compile([x, y], loss, updates=updates, backend=be)
        losses = [float(f(X, Y)) for X, Y in data]
        runs[be] = (losses, [p.value for p in params])
    (l_ref, p_ref), (l_got, p_got) = runs["numpy"], runs[backend]
    np.testing.assert_allclose(l_got, l_ref, rtol=2e-4, atol=1e-5)
    for a, b in zip(p_got, p_ref):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("into_gemm", [False, True])
def test_folded_updates_match_numpy(backend, into_gemm, monkeypatch):
    # Adam's m, v and p of each parameter in one kernel: an elementwise loop, or side outputs
    # of the gradient GEMM's epilogue (FOLD_INTO_GEMM)
    import graphc.lower
    monkeypatch.setattr(graphc.lower, "FOLD_INTO_GEMM", into_gemm)
    data = _batches(2, 17)
    runs = {}
    for be in ("numpy", backend):
        x, y, params, loss, _, updates = _mlp(0, opt="adam")
        f = gc.compile([x, y], loss, updates=updates, backend=be)
        losses = [float(f(X, Y)) for X, Y in data]
        runs[be] = (losses, [p.value for p in params])
    if into_gemm:
        assert "_dense_updates" in f.source
    (l_ref, p_ref), (l_got, p_got) = runs["numpy"], runs[backend]
    np.testing.assert_allclose(l_got, l_ref, rtol=2e-4, atol=1e-5)
    for a, b in zip(p_got, p_ref):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_forward_masks_match_numpy(backend):
    """Training-mode dropout: the same masks as numpy, a new mask each call (the counter
    parameter advances on the device)."""
    x = gc.placeholder((None, 33), name="x")
    outs = {}
    for be in ("numpy", backend):
        h = gc.dropout(gc.tanh(x), 0.4, training=True, seed=11)
        f = gc.compile([x], h * 2.0, backend=be)
        X = np.random.default_rng(0).standard_normal((17, 33)).astype(np.float32)
        outs[be] = [f(X) for _ in range(3)]
    for g, r in zip(outs[backend], outs["numpy"]):
        np.testing.assert_array_equal(g == 0, r == 0)
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(outs[backend][0] == 0, outs[backend][1] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_stay_resident_and_host_writes_are_honoured(backend):
    x, y, params, loss, logits, updates = _mlp(1, sizes=(784, 17, 10), opt="sgd")
    f = gc.compile([x, y], loss, updates=updates, backend=backend)
    predict = gc.compile([x], logits, backend=backend)
    (X, Y), = _batches(1, 33)
    W0 = params[0].value.copy()
    f(X, Y)
    exe = f._exe
    spec = exe._last
    # updated parameters are newer on the device; nothing was downloaded but the loss
    assert all(p.attrs["store"]._device_owner is not None for p in params)
    assert [n.name for _, n, _ in spec.outputs] == [spec.lowered.outputs[0][1].name]
    # the evaluation function sees the device-updated weights without a round trip
    W1 = params[0].value
    assert not np.allclose(W1, W0)
    ref = np.maximum(X @ W1 + params[1].value, 0) @ params[2].value + params[3].value
    np.testing.assert_allclose(predict(X), ref, rtol=1e-4, atol=1e-4)
    # a host write is uploaded before the next call
    params[0].value = W0
    params[2].value = np.zeros_like(params[2].value)
    np.testing.assert_allclose(predict(X), np.broadcast_to(params[3].value, (33, 10)),
                               atol=1e-6)
    loss_a = float(f(X, Y))
    np.testing.assert_allclose(loss_a, np.log(10.0), rtol=1e-3)  # all-zero W1 -> uniform
    # mixing backends: the numpy backend reads the device values and writes new ones
    g = gc.compile([x, y], loss, updates=updates, backend="numpy")
    g(X, Y)
    host_after = [p.value for p in params]
    np.testing.assert_allclose(predict(X), np.maximum(X @ host_after[0] + host_after[1], 0)
                               @ host_after[2] + host_after[3], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_source_memory_report_kernel_of(backend):
    x = gc.placeholder((None, 33), name="x")
    W = gc.parameter(np.ones((33, 17), np.float32), name="W")
    b = gc.parameter(np.zeros(17, np.float32), name="b")
    h = gc.relu(x @ W + b)
    out = gc.softmax(h) * 2.0
    f = gc.compile([x], [out, gc.sum(h)], backend=backend)
    src = f.source
    assert "GC_KERNEL" in src and '#include "gc_gpu_gemm.h"' in src and "dense" in src
    assert "__global__" not in src and "__kernel" not in src  # dialect-neutral text
    rep = f.memory_report()
    assert {"buffers", "arena", "peak", "in_place_updates"} <= set(rep)
    names = set(f._exe.kernel_of.values())
    assert any("dense" in n for n in names) and any("softmax" in n for n in names)
    outs = f(np.ones((3, 33), np.float32))
    assert outs[0].shape == (3, 17) and outs[1].shape == ()
    # a new batch size is a new specialization; the old one keeps working
    assert f(np.ones((100, 33), np.float32))[0].shape == (100, 17)
    assert f(np.ones((3, 33), np.float32))[0].shape == (3, 17)


def test_backend_unavailable_reasons(monkeypatch):
    """A missing package or device raises BackendUnavailable saying why."""
    import graphc.runtime.cuda as cuda_rt
    import graphc.runtime.opencl as ocl_rt
    monkeypatch.setattr(cuda_rt, "_DEFAULT", None)

    def no_cupy():
        raise BackendUnavailable("CUDA backend unavailable: cupy cannot be imported (test)")
    monkeypatch.setattr(cuda_rt, "import_cupy", no_cupy)
    x = gc.placeholder((2,), name="x")
    with pytest.raises(BackendUnavailable, match="cupy"):
        gc.compile([x], x * 2, backend="cuda")
    monkeypatch.setattr(ocl_rt, "_DEFAULT", None)
    monkeypatch.setenv("GRAPHC_OPENCL_DEVICE", "no-such-device-anywhere")
    with pytest.raises(BackendUnavailable):
        gc.compile([x], x * 2, backend="opencl")


# -- graphc.benchmarking_gpu without a GPU ---------------------------------------------------------

def _bench_module():
    from graphc import benchmarking_gpu
    return benchmarking_gpu


def test_bench_gpu_arguments_and_table():
    bench = _bench_module()
    assert bench.parse_shape("128x784x256") == (128, 784, 256)
    assert bench.parse_shapes("1x2x3,4x5x6") == [(1, 2, 3), (4, 5, 6)]
    with pytest.raises(Exception):
        bench.parse_shape("3x4")
    args = bench.build_parser().parse_args(["--suite", "dense", "--threads", "4", "--quick"])
    assert args.suite == "dense" and args.quick
    assert [bench.parse_shape(s) for s in bench.SHAPES][-1] == (8192, 4096, 4096)
    rows = {"device": "Fake GPU", "dense": [
        {"shape": "32x784x256", "graphc_kernels": "dense", "graphc_fused_ms": 0.01,
         "cupy_unfused_ms": 0.03, "cublas_ms": 0.012, "graphc_gflops": 1284.0,
         "cublas_gflops": 1070.0, "vs_cupy_unfused": 3.0, "vs_cublas": 1.2, "max_rel_err": 1e-7}],
        "train": [{"shape": "32x784x256", "graphc_step_ms": 0.2, "graphc_step_kernels_ms": 0.1,
                   "graphc_launches": 14, "torch_step_ms": None, "vs_torch": None}]}
    text = bench.format_tables(rows)
    assert "Fake GPU" in text and "| 32x784x256 | 0.010 | 0.030 |" in text and "n/a" in text
    assert bench.repeats_for(8192, 4096, 4096, False, None) >= 5


def test_bench_gpu_without_gpu_says_why(monkeypatch, capsys):
    bench = _bench_module()

    def no_gpu():
        raise bench.NoGPU("CUDA backend unavailable: no CUDA device found (test)")
    monkeypatch.setattr(bench, "require_gpu", no_gpu)
    assert bench.main(["--quick"]) == bench.NO_GPU_EXIT
    err = capsys.readouterr().err
    assert "no usable CUDA GPU" in err and "no CUDA device found" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_calls_from_several_threads_take_turns(backend):
    # the arena, input buffers and parameter mirror are reused by every call: one step at a time
    x = gc.placeholder((None, 3), name="x")
    P = gc.parameter(np.ones(3, np.float32), name="P")
    h = gc.compile([x], gc.sum(x * P), updates=[(P, P + 1)], backend=backend)
    h(np.ones((4, 3), np.float32))
    errors = call_from_threads(lambda: h(np.ones((4, 3), np.float32)), threads=4, calls=40)
    assert not errors, errors
    np.testing.assert_array_equal(P.value, np.full(3, 162.0))
