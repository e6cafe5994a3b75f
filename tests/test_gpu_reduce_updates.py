"""Optimizer updates folded into the GPU reduction computing their gradient.

``lower.FOLD_INTO_REDUCE`` makes a bias's in-place updates (SGD's p, momentum's velocity and p,
Adam's m, v and p, ...) members of the reduction computing the bias gradient (its column sum).
On the GPU the member updates run once per output, in the thread that holds the output's final
value (after the work-group tree step, or in the final pass of a split reduction), reading the
old parameter values.  These tests check, on OpenCL (PoCL on the CPU in CI; CUDA with ``-m
cuda`` on a machine with CuPy and a GPU):

* training steps with every optimizer match the numpy backend after several steps, and every
  bias update is a member of a reduction kernel (one kernel less per bias than without
  folding);
* every reduction shape the GPU renderer has (full reduction to a scalar, a 1-element output,
  column and row sums, keepdims, several axes, split long reductions, mean / max / logsumexp
  hosts, float64) gives numpy's values with members;
* a step stopped by invalid computed labels updates nothing, biases included;
* the CUDA dialect of the same kernel text compiles with nvcc (the PoCL runs above are the
  execution check; the cubin catches CUDA-only errors).
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.lower
from backends import CUDA, OPENCL, reductions_hosting_updates
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.runtime import nvrtc
from graphc.runtime.gpu_common import expand_includes

BACKENDS = [OPENCL, CUDA]
OPTIMIZERS = {
    "sgd": lambda: gc.optim.SGD(0.1),
    "momentum": lambda: gc.optim.SGD(0.05, momentum=0.9),
    "nesterov": lambda: gc.optim.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: gc.optim.Adam(1e-2),
    "rmsprop": lambda: gc.optim.RMSProp(1e-3),
}


@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    """Build with -cl-opt-disable (PoCL compiles ~3x faster); the tests check the generated
    source's semantics (as tests/test_gpu_backend.py does)."""
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


# -- helpers ------------------------------------------------------------------------------------

def _mlp(opt: str, sizes=(784, 33, 17, 10), seed=0, label_offset=0):
    """An MLP training step with a bias per layer: (inputs, loss, params, updates)."""
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, sizes[0]), name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    params, h = [], x
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = gc.parameter((rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in))
                         .astype(np.float32), name=f"W{i}")
        b = gc.parameter((rng.standard_normal(n_out) * 0.1).astype(np.float32), name=f"b{i}")
        params += [W, b]
        h = h @ W + b
        if i < len(sizes) - 2:
            h = gc.relu(h)
    loss = gc.cross_entropy(h, y + label_offset if label_offset else y)
    updates = OPTIMIZERS[opt]().updates(params, gc.grad(loss, params))
    return [x, y], loss, params, updates


def _run(backend, inputs, outputs, updates, feeds):
    """Call a fresh compile of the step once per feed on ``backend``, starting from the
    current state; (results per call, final state values, the compiled function).  The state
    is restored afterwards so the next backend starts from the same values."""
    state = [p for p, _ in updates]
    init = [p.value.copy() for p in state]
    f = gc.compile(inputs, outputs, updates=updates, backend=backend)
    results = [f(*feed) for feed in feeds]
    final = [p.value.copy() for p in state]
    for p, v in zip(state, init):
        p.value = v
    return results, final, f


def _assert_matches_numpy(backend, inputs, outputs, updates, feeds, rtol=1e-4, atol=1e-5):
    ref, ref_state, _ = _run("numpy", inputs, outputs, updates, feeds)
    got, got_state, f = _run(backend, inputs, outputs, updates, feeds)
    for g, r in zip(got, ref):
        for a, b in zip(g if isinstance(g, list) else [g], r if isinstance(r, list) else [r]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    for a, b, (p, _) in zip(got_state, ref_state, updates):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=p.name)
    return f


def _reduce_hosts(lowered) -> dict:
    """Parameter slot index -> (kernel name, reduction op) of each in-place update that is a
    member of a reduction kernel."""
    return {m.dst.index: (k.name, k.node.op) for k in lowered.kernels if k.kind == "reduce"
            for m in k.members if m.in_place and m.dst.where == "slot"}


def _slot_of(lowered, param) -> int:
    return next(i for i, s in enumerate(lowered.slots) if s.node is param
                or (s.kind == "param" and s.node.attrs.get("store") is param.attrs["store"]))


def _kernel_counts(program, shapes, monkeypatch) -> tuple[int, int]:
    """Kernels of the GPU lowering without and with updates folded into reductions (the flag
    is left at True, its default; monkeypatch restores it after the test)."""
    counts = []
    for fold in (False, True):
        monkeypatch.setattr(graphc.lower, "FOLD_INTO_REDUCE", fold)
        counts.append(len(lower_gpu(program, shapes).kernels))
    return counts[0], counts[1]


def _batches(n, batch, seed=5):
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch))
            for _ in range(n)]


# -- training steps -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_training_steps_update_biases_in_their_column_sum(backend, opt, monkeypatch):
    inputs, loss, params, updates = _mlp(opt)
    feeds = _batches(4, 17)
    f = _assert_matches_numpy(backend, inputs, loss, updates, feeds, rtol=2e-4, atol=2e-5)
    low = f._exe._current().lowered
    hosts = _reduce_hosts(low)
    biases = [p for p in params if p.name.startswith("b")]
    for b in biases:
        name, op = hosts[_slot_of(low, b)]
        assert op == "sum" and name.endswith("_sum_updates"), (b.name, name)
        assert f"void {name}(" in f.source
    # one kernel less per bias: its update (with its optimizer state) no longer has its own
    before, after = _kernel_counts(f.program, [(17, 784), (17,)], monkeypatch)
    assert before - after == len(biases), (before, after)
    assert len(f._exe.launches) == after


# -- every reduction shape ------------------------------------------------------------------------

def _shapes_program(dtype: str, big: bool):
    """Parameters whose gradients are reductions of every shape: a scalar (full reduction),
    one element (a (7,) -> (1,) sum), keepdims over the leading axes, a row reduction (the
    reduced axes are the contiguous ones), two non-adjacent axes, a lower-rank broadcast, and
    a plain bias's column sum.  ``big``: long reductions with few outputs (the two-pass split
    path, which runs the members in its final pass)."""
    n, c, length = (16, 8, 1200) if big else (12, 5, 7)
    rows = 9000 if big else 33
    rng = np.random.default_rng(2)
    x = gc.placeholder((n, c, length), dtype=dtype, name="x")
    z = gc.placeholder((None, 5), dtype=dtype, name="z")

    def param(shape, name):
        return gc.parameter((rng.standard_normal(shape) * 0.1).astype(dtype), name=name)

    ps = [param((), "c"), param((1,), "b1"), param((1, 1, length), "bk"),
          param((n, 1, 1), "br"), param((1, c, 1), "bm"), param((c, 1), "bv"), param((5,), "bz")]
    cc, b1, bk, br, bm, bv, bz = ps
    h = gc.tanh(x * 0.5 + cc + b1 + bk + br + bm + bv)
    loss = gc.mean(h * h) + gc.mean(gc.tanh(z + bz) ** 2)
    feeds = [(rng.standard_normal((n, c, length)).astype(dtype),
              rng.standard_normal((rows, 5)).astype(dtype)) for _ in range(3)]
    return [x, z], loss, ps, feeds


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt,dtype,big", [
    ("momentum", "float32", False), ("adam", "float32", False), ("sgd", "float64", False),
    ("adam", "float32", True), ("nesterov", "float32", True)])
def test_every_reduction_shape_hosts_updates(backend, opt, dtype, big):
    inputs, loss, ps, feeds = _shapes_program(dtype, big)
    updates = OPTIMIZERS[opt]().updates(ps, gc.grad(loss, ps))
    tol = (1e-4, 1e-6) if dtype == "float32" else (1e-10, 1e-12)
    f = _assert_matches_numpy(backend, inputs, loss, updates, feeds, *tol)
    low = f._exe._current().lowered
    hosts = _reduce_hosts(low)
    # every gradient reduction hosts updates; each parameter's own update is among them,
    # except Adam's scalar c: its bias-corrected p update has scalar inputs only, all of the
    # output's shape, and lowering folds it into the kernel of the first of them (the bias
    # correction's) instead -- c's m and v are the reduction's members
    assert len({name for name, _ in hosts.values()}) == len(ps)
    for p in ps:
        if not (opt == "adam" and p.shape == ()):
            assert _slot_of(low, p) in hosts, f"{p.name}'s update is not in its reduction"
    if big:
        # split reductions: the partial pass writes scratch only, the final pass the members
        parts = [la.function for la in f._exe.launches if la.function.endswith("_part")]
        assert parts
        texts = f.source.split("\n\n")
        for part in parts:
            final = part[:-len("_part")]
            if final in {name for name, _ in hosts.values()}:
                part_text = next(t for t in texts if f"void {part}(" in t)
                final_text = next(t for t in texts if f"void {final}(" in t)
                assert "up0[o] =" in final_text and "up0" not in part_text


@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_max_logsumexp_host_updates_too(backend):
    # as the C backend's test: other reductions host updates, across rows (max over axis 1)
    # and down columns; a reduction reading the parameter it would update (at other indices)
    # hosts nothing
    rng, X, g, updates = reductions_hosting_updates(5)
    feeds = [(rng.randn(5, 3).astype("float32"),) for _ in range(2)]
    f = _assert_matches_numpy(backend, [X], g, updates, feeds, rtol=1e-5, atol=1e-6)
    kernels = f._exe._current().lowered.kernels
    hosts = {k.node.op: len(k.members) for k in kernels if k.kind == "reduce" and k.members}
    assert hosts == {"sum": 2, "mean": 1, "logsumexp": 1, "max": 1}
    assert f.source.count("and updates in place") == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_reductions_host_updates(backend):
    # integer sums accumulate in 64 bits and integer max compares in the input type; the
    # members then compute in 64-bit integers (the elementwise kernels' rule), exactly
    rng = np.random.RandomState(7)
    L = gc.placeholder((6, 4), dtype="int64", name="L")
    counts = gc.parameter(np.zeros(4, "int64"), name="counts")
    peak = gc.parameter(np.full(6, -5, "int64"), name="peak")
    total = gc.parameter(np.array(3, "int64"), name="total")
    updates = [(counts, counts + gc.sum(L * 3, axis=0)),
               (peak, gc.maximum(peak, gc.max(L - 1, axis=1))),
               (total, total + gc.sum(L * L))]
    feeds = [(rng.randint(-1000, 1000, (6, 4)).astype("int64"),) for _ in range(3)]
    f = _assert_matches_numpy(backend, [L], gc.sum(L), updates, feeds, rtol=0, atol=0)
    low = f._exe._current().lowered
    assert len(_reduce_hosts(low)) == 3


# -- a step stopped by invalid labels -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_invalid_computed_labels_update_no_bias(backend, opt):
    # labels computed in the graph are checked by the cross-entropy kernel; the host reads the
    # status word before launching anything after it -- the reductions hosting the bias
    # updates included (lowering schedules a host after every label check, as its members)
    inputs, loss, params, updates = _mlp(opt, sizes=(20, 9, 4), label_offset=1)
    state = [p for p, _ in updates]
    before = [p.value.copy() for p in state]
    f = gc.compile(inputs, loss, updates=updates, backend=backend)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 20)).astype(np.float32)
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 4\)"):
        f(X, np.array([0, 1, 2, 3, 0, 1, 2]))   # 3 + 1 is out of range
    for p, v in zip(state, before):
        np.testing.assert_array_equal(p.value, v, err_msg=p.name)
    low = f._exe._current().lowered
    assert all(_slot_of(low, b) in _reduce_hosts(low) for b in params if b.name[0] == "b")
    # in range: trains like the numpy backend
    ok = np.array([0, 1, 2, 0, 1, 2, 0])
    _assert_matches_numpy(backend, inputs, loss, updates, [(X, ok)] * 3, rtol=1e-4, atol=1e-6)


# -- the CUDA dialect of the same text ------------------------------------------------------------

@pytest.mark.skipif(nvrtc.nvcc_path() is None, reason="nvcc not found")
def test_cuda_text_with_folded_updates_compiles_with_nvcc():
    # every optimizer's MLP step and the reduction-shape program (split paths included) in
    # one CUDA translation unit each, compiled to an sm_90 cubin: the first by nvcc, the rest
    # by NVRTC where it is installed (the same front end; nvcc's whole pipeline took about 8 s
    # per program on the 2-core machine)
    programs = []
    for opt in OPTIMIZERS:
        inputs, loss, _, updates = _mlp(opt)
        programs.append((f"mlp_{opt}", inputs, loss, updates, [(128, 784), (128,)]))
    for big in (False, True):
        inputs, loss, ps, feeds = _shapes_program("float32", big)
        updates = OPTIMIZERS["adam"]().updates(ps, gc.grad(loss, ps))
        programs.append((f"shapes_big{int(big)}", inputs, loss, updates,
                         [a.shape for a in feeds[0]]))
    for i, (name, inputs, loss, updates, shapes) in enumerate(programs):
        f = gc.compile(inputs, loss, updates=updates, backend="numpy")
        low = lower_gpu(f.program, shapes)
        hosts = [k.name for k in low.kernels if k.kind == "reduce" and k.members]
        assert hosts, name
        text, launches = render_gpu(low)
        via = "nvcc" if i == 0 or not nvrtc.nvrtc_available() else "nvrtc"
        cubin = nvrtc.compile_cubin(expand_includes(text), name, arch="sm_90", backend=via)
        assert cubin[:4] == b"\x7fELF"
        for fn in {la.function for la in launches}:
            assert fn.encode() in cubin, f"{name}: kernel {fn} missing from the cubin"
