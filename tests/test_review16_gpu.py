"""Review 16: the GPU backends (codegen/gpu.py, runtime/cuda*.py, nvrtc.py, gpu_exec.py,
opencl*.py) where the existing GPU tests do not reach.

* ``backend="cuda"`` end to end without a GPU: ``fake_cupy.FakeCupy`` stands in for CuPy; every
  launch is checked against the CUDA limits and runs as OpenCL on PoCL, so graphc's own CUDA
  adapter (stream, arguments, grid and block, uploads and downloads) is exercised for real.
* OpenCL parity with numpy where tests/test_gpu_backend.py does not go: integer dtypes, 0-d
  and empty tensors, non-contiguous views, every broadcast kind.
* Rendering programs over more than 2**31 elements (nothing is allocated): index types, grid
  limits.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.gpu import MAX_GROUPS, lower_gpu, render_gpu
from graphc.errors import BackendUnavailable
from graphc.runtime import nvrtc
from graphc.runtime.opencl import opencl_available


needs_ocl = pytest.mark.skipif(not opencl_available(), reason="no OpenCL device")


@pytest.fixture(autouse=True)
def quick_build(monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


def compare(phs, outs, arrays, backend, rtol=2e-5, atol=1e-6):
    ref = gc.compile(phs, outs, backend="numpy")(*arrays)
    got = gc.compile(phs, outs, backend=backend)(*arrays)
    if not isinstance(outs, list):
        ref, got = [ref], [got]
    for k, (g, r) in enumerate(zip(got, ref)):
        assert g.shape == r.shape and g.dtype == r.dtype, (k, g.shape, g.dtype, r.shape, r.dtype)
        if r.dtype.kind in "iub":
            np.testing.assert_array_equal(g, r, err_msg=f"output {k}")
        else:
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=f"output {k}")


# -- backend="cuda" through a stand-in CuPy ---------------------------------------------------

def _mixed_program():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 33), name="x")
    w = gc.placeholder((33, 17), name="w")
    a = gc.placeholder((3, 17, 5), name="a")
    y = gc.placeholder((None,), dtype="int64", name="y")
    z = gc.placeholder((9001, 3), name="z")
    h = gc.relu(x @ w + 0.5)
    outs = [h, gc.softmax(h), gc.sum(x, axis=0), gc.max(x, axis=1), gc.transpose(x),
            gc.matmul(gc.transpose(a, (0, 2, 1)), a), gc.cross_entropy(h, y),
            gc.sum(z, axis=0), gc.mean(z), gc.logsumexp(gc.transpose(a, (2, 1, 0)), axis=0)]
    cost = gc.cross_entropy(h, y) + gc.sum(outs[5] * 0.1) + gc.sum(gc.softmax(x, axis=0) * x)
    outs += gc.grad(cost, [x, w, a])
    arrays = [rng.standard_normal((100, 33)).astype(np.float32),
              rng.standard_normal((33, 17)).astype(np.float32),
              rng.standard_normal((3, 17, 5)).astype(np.float32),
              rng.integers(0, 17, 100), rng.standard_normal((9001, 3)).astype(np.float32)]
    return [x, w, a, y, z], outs, arrays


@needs_ocl
def test_cuda_backend_runs_on_a_stand_in_cupy(fake_cupy):
    """The CUDA adapter's launches (grid, block, argument list, stream) give numpy's results;
    the CUDA text compiles with NVRTC for the device's architecture (sm_ + compute
    capability); every copy and launch is on graphc's own non-blocking stream."""
    cp = fake_cupy(nvrtc=nvrtc.cubin_compiler_available(), cc="80")
    phs, outs, arrays = _mixed_program()
    compare(phs, outs, arrays, "cuda", rtol=2e-4, atol=2e-5)
    assert cp.launches and all(m.compiled for m in cp.modules)
    streams = {id(s) for _, _, _, s in cp.launches} | {id(s) for _, s in cp.log}
    assert len(streams) == 1 and None not in {s for _, _, _, s in cp.launches}
    stream = cp.launches[0][3]
    assert stream.non_blocking and stream.syncs >= 1
    names = {n for n, *_ in cp.launches}
    assert any(n.endswith("_part") for n in names) and any("dense" in n for n in names)


def _mlp_updates(opt, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, 13), dtype=dtype, name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    params, h = [], x
    for i, (n_in, n_out) in enumerate([(13, 17), (17, 5)]):
        W = gc.parameter((rng.standard_normal((n_in, n_out)) * 0.4).astype(dtype), name=f"W{i}")
        b = gc.parameter((rng.standard_normal(n_out) * 0.1).astype(dtype), name=f"b{i}")
        params += [W, b]
        h = h @ W + b
        if i == 0:
            h = gc.tanh(h)
    loss = gc.cross_entropy(h, y)
    grads = gc.grad(loss, params)
    return [x, y], loss, params, opt().updates(params, grads)


OPTIMIZERS = {
    "sgd": lambda: gc.optim.SGD(0.1),
    "momentum": lambda: gc.optim.SGD(0.05, momentum=0.9),
    "nesterov": lambda: gc.optim.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: gc.optim.Adam(1e-2),
    "rmsprop": lambda: gc.optim.RMSProp(1e-2),
}


def _train(backend, opt, dtype, steps=4, batch=17):
    phs, loss, params, updates = _mlp_updates(OPTIMIZERS[opt], dtype=dtype)
    f = gc.compile(phs, loss, updates=updates, backend=backend)
    rng = np.random.default_rng(7)
    losses = [float(f(rng.standard_normal((batch, 13)).astype(dtype), rng.integers(0, 5, batch)))
              for _ in range(steps)]
    return losses, [p.value for p in params]


@needs_ocl
@pytest.mark.parametrize("opt", [o if o in ("sgd", "adam") else
                                 pytest.param(o, marks=pytest.mark.slow)
                                 for o in sorted(OPTIMIZERS)])
def test_cuda_training_steps_on_a_stand_in_cupy(fake_cupy, opt):
    fake_cupy()
    (l_ref, p_ref), (l_got, p_got) = _train("numpy", opt, "float32"), _train("cuda", opt,
                                                                              "float32")
    np.testing.assert_allclose(l_got, l_ref, rtol=1e-4, atol=1e-6)
    for g, r in zip(p_got, p_ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


# every optimizer once and both dtypes in the default run; the other half (a PoCL build
# each, ~1 s on a cold cache: one program holding several optimizers builds no faster) with
# -m slow
_DEFAULT_TRAINING = {("float32", "sgd"), ("float32", "adam"), ("float32", "nesterov"),
                     ("float64", "rmsprop"), ("float64", "momentum")}


@needs_ocl
@pytest.mark.parametrize("dtype, opt", [
    pytest.param(d, o, marks=() if (d, o) in _DEFAULT_TRAINING else pytest.mark.slow)
    for d in ("float32", "float64") for o in sorted(OPTIMIZERS)])
def test_opencl_training_steps_every_optimizer(opt, dtype):
    (l_ref, p_ref), (l_got, p_got) = _train("numpy", opt, dtype), _train("opencl", opt, dtype)
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(l_got, l_ref, **tol)
    for g, r in zip(p_got, p_ref):
        np.testing.assert_allclose(g, r, **tol)


def test_cuda_unavailable_says_why(fake_cupy, monkeypatch):
    import sys
    x = gc.placeholder((2,), name="x")
    fake_cupy(devices=0)
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        gc.compile([x], x * 2, backend="cuda")
    fake_cupy(devices=RuntimeError("cudaErrorInsufficientDriver"))
    with pytest.raises(BackendUnavailable, match="driver.*cudaErrorInsufficientDriver"):
        gc.compile([x], x * 2, backend="cuda")
    fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", None)   # import cupy raises ImportError
    with pytest.raises(BackendUnavailable, match="cupy cannot be imported"):
        gc.compile([x], x * 2, backend="cuda")


# -- kernels over more than 2**31 elements (rendered only: nothing is allocated) ----------------

INT_MAX = 2 ** 31 - 1
MAX_GRID = (INT_MAX, 65535, 65535)


def _render(inputs, outs, shapes):
    f = gc.compile(inputs, outs, backend="numpy")
    from graphc.runtime.gpu_common import expand_includes
    text, launches = render_gpu(lower_gpu(f.program, shapes))
    return expand_includes(text), launches


def _code(text: str) -> str:
    """``text`` without comments."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


def _check_32bit_safe(text: str, launches) -> None:
    code = _code(text)
    # an int literal past INT_MAX would not even be an int; an int loop bound near INT_MAX
    # overflows in the grid-stride step
    for m in re.finditer(r"(?<![\w.])(\d+)(?![\d.xXeEfFlLuU])", code):
        assert int(m.group(1)) <= INT_MAX, code[max(0, m.start() - 80):m.end() + 20]
    for m in re.finditer(r"for \(int (\w+) = [^;]*; \1 < (\d+);", code):
        assert int(m.group(2)) + MAX_GROUPS * 256 < 2 ** 31, m.group(0)
    for la in launches:
        assert all(0 <= g <= lim for g, lim in zip(la.groups, MAX_GRID)), (la.function, la.groups)
        assert int(np.prod(la.local)) <= 1024


def test_kernels_over_2_31_elements_index_in_64_bits():
    n, c = 2 ** 16 + 5, 2 ** 15 + 3          # 2.1e9 elements
    x = gc.placeholder((None, c), name="x")
    b = gc.placeholder((c,), name="b")
    y = gc.placeholder((None,), dtype="int64", name="y")
    outs = [gc.exp(x) + b, gc.sum(x, axis=0), gc.sum(x, axis=1), gc.max(x), gc.softmax(x),
            gc.log_softmax(x, axis=0), gc.transpose(x), gc.cross_entropy(x, y),
            gc.logsumexp(x, axis=0)]
    outs += gc.grad(gc.cross_entropy(x, y) + gc.sum(gc.softmax(x) * b), [x, b])
    text, launches = _render([x, b, y], outs, [(n, c), (c,), (n,)])
    _check_32bit_safe(text, launches)
    assert "for (gc_i64 gi" in text and "for (gc_i64 tile" in text


def test_gemm_tile_loads_index_in_64_bits():
    """A (128, K) @ (K, 3) with K > 2**24: row * lda of a row < 128 passes 2**31 (A has more
    than 2**31 elements).  The GEMM template multiplied in int; now in gc_i64."""
    k = 2 ** 24 + 2 ** 20
    a = gc.placeholder((128, k), name="a")
    w = gc.placeholder((k, 3), name="w")
    wt = gc.placeholder((3, k), name="wt")
    text, launches = _render([a, w, wt], [a @ w, a @ gc.transpose(wt)],
                             [(128, k), (k, 3), (3, k)])
    _check_32bit_safe(text, launches)
    loads = re.findall(r"\b[AB]p\[([^\]]*)\]", _code(text))
    assert loads
    for idx in loads:
        assert "(gc_i64)" in idx, idx   # 127 * lda would wrap in 32 bits


def test_batched_matmul_over_65535_batches_splits_grid_z():
    a = gc.placeholder((70000, 3, 4), name="a")
    b = gc.placeholder((70000, 4, 5), name="b")
    text, launches = _render([a, b], [gc.matmul(a, b)], [(70000, 3, 4), (70000, 4, 5)])
    _check_32bit_safe(text, launches)
    mm = [la for la in launches if la.groups[2] > 1]
    assert [la.groups[2] for la in mm] == [65535, 70000 - 65535]
    assert [la.args[-1].value for la in mm] == [0, 65535]        # gc_batch0


def test_cuda_build_failure_is_a_runtime_error_with_the_log(fake_cupy):
    """CuPy's CompileException derives from Exception only: it now surfaces as a RuntimeError
    (as an OpenCL build failure does) naming the device, its architecture and the log."""
    class CompileException(Exception):
        pass
    fake_cupy(compile_error=CompileException("graphc_program(3): error: identifier \"q\" is "
                                             "undefined"), cc="86")
    x = gc.placeholder((3,), name="x")
    f = gc.compile([x], x * 2, backend="cuda")
    with pytest.raises(RuntimeError, match=r"(?s)CUDA program build failed on Fake GPU "
                                           r"\(sm_86\).*CompileException.*undefined"):
        f(np.ones(3, np.float32))


# -- parity with numpy where tests/test_gpu_backend.py does not go ------------------------------
# "opencl" on PoCL; "cuda" through the CuPy stand-in (the CUDA adapter's launches, run as OpenCL)

GPU = ["opencl", "cuda"]
# the larger programs run on the stand-in CUDA only with -m slow (PoCL compiles each twice)
GPU_SLOW_CUDA = ["opencl", pytest.param("cuda", marks=pytest.mark.slow)]


@pytest.fixture
def gpu(request, fake_cupy):
    if not opencl_available():
        pytest.skip("no OpenCL device")
    if request.param == "cuda":
        fake_cupy()
    return request.param


INT_DTYPES = ["int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64"]
# PoCL's build time grows with the number of kernels (~20 per dtype): the default run takes
# each width once, signed and unsigned, and -m slow the other four
_DEFAULT_INT_DTYPES = ["int64", "int16", "uint8", "uint32"]


@pytest.mark.parametrize("gpu", GPU, indirect=True)
@pytest.mark.parametrize("dtypes", [
    pytest.param(_DEFAULT_INT_DTYPES, id="default"),
    pytest.param([d for d in INT_DTYPES if d not in _DEFAULT_INT_DTYPES], id="others",
                 marks=pytest.mark.slow)])
def test_integer_dtypes(gpu, dtypes):
    rng = np.random.default_rng(1)
    phs, arrays, outs = [], [], []
    for dtype in dtypes:
        a = gc.placeholder((17, 3), dtype=dtype, name=f"a_{dtype}")
        b = gc.placeholder((3,), dtype=dtype, name=f"b_{dtype}")
        phs += [a, b]
        arrays += [rng.integers(0, 50, (17, 3)).astype(dtype),
                   rng.integers(1, 50, (3,)).astype(dtype)]
        outs += [a + b, a - b, a * b, gc.maximum(a, b), gc.minimum(a, b),
                 gc.where(gc.greater(a, b), a, b), gc.greater(a, b), gc.equal(a, b),
                 gc.less(a, b), gc.sum(a), gc.sum(a, axis=0), gc.max(a, axis=1), gc.max(a),
                 gc.transpose(a), gc.reshape(gc.transpose(a), (-1,)), gc.square(a), gc.abs(a),
                 gc.mean(a, axis=0), a @ gc.transpose(a)] + ([-a] if dtype[0] != "u" else [])
    compare(phs, outs, arrays, gpu)


@pytest.mark.parametrize("gpu", GPU, indirect=True)
def test_zero_d_tensors(gpu):
    phs, arrays, outs = [], [], []
    for dtype in ["float32", "float64", "int64"]:
        s = gc.placeholder((), dtype=dtype, name=f"s_{dtype}")
        v = gc.placeholder((5,), dtype=dtype, name=f"v_{dtype}")
        phs += [s, v]
        arrays += [np.array(1.5 if dtype[0] == "f" else 3, dtype), np.arange(5).astype(dtype)]
        outs += [s * 2, s + v, gc.sum(s), gc.max(s), gc.mean(s), gc.reshape(s, (1, 1)),
                 gc.transpose(s), gc.sum(v * s)]
        if dtype[0] == "f":
            outs += [gc.exp(s), gc.logsumexp(s), gc.softmax(gc.reshape(s, (1,)))]
            outs += gc.grad(gc.sum(gc.exp(s) * v) + gc.logsumexp(s) +
                            gc.sum(gc.softmax(gc.reshape(s, (1,))) * s) + gc.max(s) * s, [s, v])
    compare(phs, outs, arrays, gpu, rtol=1e-6)


@pytest.mark.parametrize("gpu", GPU, indirect=True)
def test_empty_tensors(gpu):
    phs, arrays, outs = [], [], []
    for j, shape in enumerate([(0, 3), (3, 0), (0,), (2, 0, 4)]):
        x = gc.placeholder(shape, name=f"x{j}")
        phs.append(x)
        arrays.append(np.zeros(shape, np.float32))
        outs += [x * 2, gc.exp(x), gc.sum(x), gc.sum(x, axis=0), gc.sum(x, axis=-1),
                 gc.mean(x, axis=0), gc.transpose(x), gc.softmax(x, axis=-1)]
        outs += [gc.max(x, axis=-1)] if shape[-1] else []
        outs += [gc.logsumexp(x, axis=0)] if shape[0] else []
        outs += gc.grad(gc.sum(gc.exp(x)) + gc.sum(gc.softmax(x) * x), [x])
    compare(phs, outs, arrays, gpu)


@pytest.mark.parametrize("gpu", GPU, indirect=True)
def test_empty_batches_gemm_and_cross_entropy(gpu):
    a = gc.placeholder((None, 5), name="a")
    w = gc.placeholder((5, 3), name="w")
    compare([a, w], [a @ w, gc.grad(gc.sum(a @ w), [w])[0], gc.softmax(a @ w)],
            [np.zeros((0, 5), np.float32), np.ones((5, 3), np.float32)], gpu)
    k = gc.placeholder((4, 0), name="k")
    kw = gc.placeholder((0, 3), name="kw")
    compare([k, kw], [k @ kw + 1.0], [np.zeros((4, 0), np.float32),
                                      np.zeros((0, 3), np.float32)], gpu)
    lg = gc.placeholder((None, 5), name="lg")
    y = gc.placeholder((None,), dtype="int64", name="y")
    loss = gc.cross_entropy(lg, y, reduction="sum")
    compare([lg, y], [loss, gc.cross_entropy(lg, y, reduction="none"), gc.grad(loss, [lg])[0]],
            [np.zeros((0, 5), np.float32), np.zeros(0, np.int64)], gpu)


@pytest.mark.parametrize("gpu", GPU_SLOW_CUDA, indirect=True)
def test_non_contiguous_views(gpu):
    rng = np.random.default_rng(2)
    x = gc.placeholder((17, 33), name="x")
    y = gc.placeholder((33, 17), name="y")
    z = gc.placeholder((3, 17, 5), name="z")
    X, Y, Z = (rng.standard_normal(s).astype(np.float32) for s in [(17, 33), (33, 17), (3, 17, 5)])
    outs = [gc.transpose(x) + y, gc.reshape(gc.transpose(x), (11, 51)),
            gc.reshape(gc.transpose(z, (2, 0, 1)), (5, -1)) * 2,
            gc.sum(gc.transpose(x), axis=1),
            gc.sum(gc.reshape(gc.transpose(z, (1, 0, 2)), (17, 15)), axis=0),
            gc.softmax(gc.transpose(x), axis=0), gc.transpose(x) @ x,
            gc.reshape(gc.transpose(y), (-1,)), gc.max(gc.transpose(z, (2, 1, 0)), axis=(0, 2)),
            gc.log_softmax(gc.reshape(gc.transpose(z), (5, 51)), axis=1),
            gc.transpose(gc.reshape(gc.transpose(x), (3, 11, 17)), (1, 2, 0)),
            gc.mean(gc.transpose(z, (0, 2, 1)), axis=-1)]
    cost = sum(gc.sum(o * float(k + 1)) for k, o in enumerate(outs))
    compare([x, y, z], outs + gc.grad(cost, [x, y, z]), [X, Y, Z], gpu, rtol=1e-4, atol=1e-4)


BROADCASTS = [((), (17, 33)), ((33,), (17, 33)), ((17, 1), (1, 33)), ((1, 33), (17, 1)),
              ((3, 1, 5), (17, 1)), ((1,), (100,)), ((1, 1, 1), (3, 17, 5)), ((17, 33), ())]
# one PoCL build holds every kind (~50 kernels, the longest build of the default run): the
# default run takes one of each kind (0-d, rank extension, both sides stretched, rank
# extension with stretching, size-1 axes stretched), -m slow the mirrored operands and 1-D
_SLOW_BROADCASTS = [((1, 33), (17, 1)), ((1,), (100,)), ((17, 33), ())]


@pytest.mark.parametrize("gpu", GPU_SLOW_CUDA, indirect=True)
@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kinds", [
    pytest.param([b for b in BROADCASTS if b not in _SLOW_BROADCASTS], id="default"),
    pytest.param(_SLOW_BROADCASTS, id="mirrored", marks=pytest.mark.slow)])
def test_every_broadcast_kind(gpu, dtype, kinds):
    rng = np.random.default_rng(3)
    phs, arrays, outs = [], [], []
    for j, (sa, sb) in enumerate(kinds):
        a = gc.placeholder(sa, dtype=dtype, name=f"a{j}")
        b = gc.placeholder(sb, dtype=dtype, name=f"b{j}")
        arrays += [rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)]
        o = [a + b, a * b, gc.maximum(a, b), gc.where(gc.greater(a, b), a, b),
             a / (gc.abs(b) + 1), gc.pow(gc.abs(a) + 0.5, b)]
        cost = sum(gc.sum(t * float(k + 1)) for k, t in enumerate(o))
        outs += o + gc.grad(cost, [a, b])
        phs += [a, b]
    compare(phs, outs, arrays, gpu, rtol=1e-5 if dtype == "float32" else 1e-12,
            atol=1e-5 if dtype == "float32" else 1e-12)


# -- the CUDA text of every op case compiles with NVRTC without a warning -----------------------

def _nvrtc_log(text: str, arch: str = "sm_90") -> tuple[int, str]:
    """(NVRTC result code, compiler log) of the CUDA program ``text`` (prelude included)."""
    import ctypes as c
    lib, _ = nvrtc._load_nvrtc()
    prog = c.c_void_p()
    assert lib.nvrtcCreateProgram(c.byref(prog), text.encode(), b"graphc.cu", 0, None,
                                  None) == 0
    try:
        opts = [f"--gpu-architecture={arch}".encode()]
        res = lib.nvrtcCompileProgram(prog, 1, (c.c_char_p * 1)(*opts))
        size = c.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, c.byref(size))
        buf = c.create_string_buffer(max(size.value, 1))
        lib.nvrtcGetProgramLog(prog, buf)
        return res, buf.value.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(c.byref(prog))


def _all_cases_program(dtype):
    from op_cases import CASES, placeholders_for, sample_inputs, weighted_cost
    rng = np.random.default_rng(0)
    phs_all, shapes, outs = [], [], []
    for j, case in enumerate(CASES):
        for s_, shp in enumerate(case.shapes[:2]):
            arrays = sample_inputs(case, shp, dtype, j)
            phs = placeholders_for(arrays)
            for k, p in enumerate(phs):
                p._name = f"c{j}_{s_}_in{k}"
            out = case.build(*phs)
            outs.append(out)
            if case.grad_inputs():
                cost, _ = weighted_cost(out, rng)
                outs += gc.grad(cost, [phs[i] for i in case.grad_inputs()])
            phs_all += phs
            shapes += [a.shape for a in arrays]
    return _render(phs_all, outs, shapes)


@pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC not found")
def test_one_thread_per_output_reductions_compile_without_warnings():
    """The kernels that warned (#177-D, unused variable): reductions whose outputs take one
    thread each (an unused local array) and the split reduction of one output (an unused
    output index)."""
    from graphc.runtime.gpu_common import program_source
    x = gc.placeholder((None, 3), name="x")
    z = gc.placeholder((9001, 3), name="z")
    outs = [gc.sum(x, axis=1), gc.max(x, axis=1), gc.logsumexp(x, axis=1), gc.softmax(x),
            gc.sum(z), gc.mean(z), gc.sum(z, axis=0)]
    text, launches = _render([x, z], outs, [(17, 3), (9001, 3)])
    assert any(la.function.endswith("_part") for la in launches)
    assert any(la.local[0] < 256 for la in launches)
    res, log = _nvrtc_log(program_source("cuda", text))
    assert res == 0 and not log.strip(), log[:4000]


@pytest.mark.slow
@pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC not found")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_op_case_compiles_with_nvrtc_without_warnings(dtype):
    """Every case of tests/op_cases.py (two shapes each), forward and backward, as one CUDA
    program: NVRTC's log is empty (it used to warn about an unused local array in every
    reduction whose outputs take one thread each, and an unused index in split reductions
    of one output)."""
    from graphc.runtime.gpu_common import program_source
    text, launches = _all_cases_program(dtype)
    res, log = _nvrtc_log(program_source("cuda", text))
    assert res == 0 and not log.strip(), log[:4000]
    assert len({la.function for la in launches}) > 300


def test_gemm_dimension_past_int32_is_refused_when_rendered():
    """A GEMM dimension of 2**31 (its sizes are int kernel arguments) used to render, then fail
    binding the launch with numpy's 'OverflowError: Python integer 2147483648 out of bounds
    for int32'; now rendering says what is unsupported."""
    k = 2 ** 31
    a = gc.placeholder((1, k), name="a")
    w = gc.placeholder((k, 1), name="w")
    with pytest.raises(NotImplementedError, match="32-bit.*2147483648"):
        _render([a, w], [a @ w], [(1, k), (k, 1)])
