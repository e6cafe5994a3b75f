"""Transpose kernels (``lower.transpose_plan``; ``codegen/c.py`` and ``codegen/gpu.py``'s
``render_transpose``) against numpy, forward and backward, on every dtype, odd sizes and ranks
up to 6, on the C backend with one and two threads (the tiles of a large transpose are one
parallel range) and on OpenCL (PoCL in CI).  The CUDA dialect of the tiled kernel is compiled to
an sm_90 cubin with nvcc / NVRTC where one exists.

A transpose only moves values, so every result must equal numpy's exactly.  Compiling is the
slow part, so one program computes every case of a dtype.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL
from graphc.codegen.c import render_c
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.lower import lower, transpose_plan

# (input shape, perm): every plan kind, edge tiles (sizes 1, 3, 17, 33, 100+), ranks 1 to 6
CASES = [
    ((17, 33), (1, 0)),                   # tiled, edge tiles on both axes
    ((3, 100), (1, 0)),                   # one short tile row
    ((1, 130), (1, 0)),                   # size-1 axis: a block copy
    ((3, 1, 5), (1, 0, 2)),               # identity once size-1 axes drop: a block copy
    ((33, 17, 3), (2, 0, 1)),             # tiled, source-contiguous axis of 3
    ((17, 33, 3), (1, 0, 2)),             # last axis kept, short runs (3): tiled runs
    ((5, 17, 33), (0, 2, 1)),             # batched tiles
    ((33, 5, 17), (2, 1, 0)),             # full reversal
    ((2, 3, 17, 16), (0, 2, 1, 3)),       # rows of 16 (64 bytes for float32)
    ((4, 17, 3, 33), (0, 2, 1, 3)),       # split heads, rows of 33
    ((2, 3, 4, 5, 6), (4, 2, 0, 3, 1)),   # rank 5
    ((2, 3, 1, 5, 7, 2), (5, 3, 1, 0, 4, 2)),  # rank 6, a size-1 axis
    ((130, 257), (1, 0)),                 # above GC_PAR_MIN: parallel tiles, edge tiles
    ((64, 35, 20), (2, 1, 0)),            # parallel full reversal
    ((8, 70, 9, 8), (0, 2, 1, 3)),        # runs of 8: tiled runs (float32), rows (float64)
    ((100, 3, 1, 129), (3, 2, 1, 0)),     # parallel, tiles with 3 positions on b
]

C_DTYPES = ["float32", "float64", "int64", "int32", "int16", "int8", "uint8", "uint16",
            "uint32", "uint64", "bool"]
GPU_DTYPES = ["float32", "float64", "int64", "int16", "uint8", "bool"]


def _sample(shape, dtype, rng):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)  # the whole range: a truncating copy would show
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _forward(backend, dtype, cases=CASES):
    rng = np.random.default_rng(7)
    arrays = [_sample(shape, dtype, rng) for shape, _ in cases]
    phs = [gc.placeholder(a.shape, dtype=dtype, name=f"x{i}") for i, a in enumerate(arrays)]
    outs = [gc.transpose(x, perm) for x, (_, perm) in zip(phs, cases)]
    got = gc.compile(phs, outs, backend=backend)(*arrays)
    for a, g, (shape, perm) in zip(arrays, got, cases):
        want = np.transpose(a, perm)
        assert g.dtype == want.dtype and g.shape == want.shape, (shape, perm)
        assert np.array_equal(g, want), f"{backend} {dtype} transpose{shape} {perm} differs"


def _backward(backend, dtype, cases=CASES):
    """d/dx sum(transpose(x, perm) * w) = transpose(w, inverse perm): a transpose of the
    gradient with the inverse permutation (another plan kind for most cases)."""
    rng = np.random.default_rng(11)
    arrays = [_sample(shape, dtype, rng) for shape, _ in cases]
    phs = [gc.placeholder(a.shape, dtype=dtype, name=f"x{i}") for i, a in enumerate(arrays)]
    ws = [_sample(np.transpose(a, perm).shape, dtype, rng) for a, (_, perm) in zip(arrays, cases)]
    cost = sum(gc.sum(gc.transpose(x, perm) * gc.constant(w, dtype=dtype))
               for x, w, (_, perm) in zip(phs, ws, cases))
    grads = gc.grad(cost, phs)
    ref = gc.compile(phs, grads, backend="numpy")(*arrays)
    got = gc.compile(phs, grads, backend=backend)(*arrays)
    for g, r, w, (shape, perm) in zip(got, ref, ws, cases):
        assert np.array_equal(r, np.transpose(w, np.argsort(perm)))
        assert np.array_equal(g, r), f"{backend} {dtype} d/dx transpose{shape} {perm} differs"


@pytest.fixture
def threads(request):
    gc.set_num_threads(request.param)
    yield request.param
    gc.set_num_threads(0)


# -- the plan ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, perm, kind, run", [
    ((4096, 4096), (1, 0), "tiled", 1),
    ((32, 128, 256), (2, 1, 0), "tiled", 1),
    ((32, 8, 128, 64), (0, 2, 1, 3), "rows", 64),
    ((32, 8, 128, 64), (0, 1, 3, 2), "tiled", 1),
    ((17, 33, 3), (1, 0, 2), "tiled", 3),
    ((3, 1, 5), (1, 0, 2), "copy", 15),
    ((1, 1), (1, 0), "copy", 1),
    ((0, 3), (1, 0), "copy", 0),
])
def test_plan_kinds(shape, perm, kind, run):
    plan = transpose_plan(shape, perm, 4)
    assert (plan.kind, plan.run) == (kind, run)
    if kind == "tiled":  # b walks the source contiguously, a the destination
        assert plan.src[plan.b] == run and plan.dst[plan.a] == run and plan.a != plan.b


def test_plan_runs_by_element_size():
    """Runs of 8 elements are tiled for float32 (32 bytes), copied as rows for float64."""
    assert transpose_plan((8, 70, 9, 8), (0, 2, 1, 3), 4).kind == "tiled"
    assert transpose_plan((8, 70, 9, 8), (0, 2, 1, 3), 8).kind == "rows"


# -- C ----------------------------------------------------------------------------------------

def _c_source(shape, perm, dtype="float32"):
    x = gc.placeholder(shape, dtype=dtype, name="x")
    f = gc.compile([x], gc.transpose(x, perm), backend="numpy")
    return render_c(lower(f.program, [shape]))


@pytest.mark.parametrize("backend", [C])
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", C_DTYPES)
def test_c_forward(backend, dtype, threads):
    _forward(backend, dtype)


@pytest.mark.parametrize("backend", [C])
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_c_backward(backend, dtype, threads):
    _backward(backend, dtype)


@pytest.mark.parametrize("backend", [C])
def test_c_large_parallel_tiles(backend, threads=None):
    """A 2-D transpose of 1000 x 1030 and split heads of (4, 64, 8, 33): many parallel tiles
    and rows, the same with 1, 2 and 3 threads."""
    cases = [((1000, 1030), (1, 0)), ((4, 64, 8, 33), (0, 2, 1, 3)),
             ((4, 64, 264), (2, 0, 1))]
    try:
        for n in (1, 2, 3):
            gc.set_num_threads(n)
            _forward(backend, "float32", cases)
    finally:
        gc.set_num_threads(0)


def test_c_source_shapes():
    """The C kinds: tiles with constant-bound full tiles and a parallel collapsed range;
    a vector loop per run for the kept last axis; one memcpy for an identity once merged."""
    tiled = _c_source((130, 257), (1, 0))
    assert "collapse(2)" in tiled and "ib < 16L" in tiled and "ia < na" in tiled
    rows = _c_source((32, 8, 16, 64), (0, 2, 1, 3))
    assert "for (long c = 0; c < 64L; c++) out[" in rows and "collapse(3)" in rows
    copy = _c_source((3, 1, 5), (1, 0, 2))
    assert "memcpy(out, x, 15UL" in copy and "for (" not in copy.split("k0_transpose(")[2]


def test_c_tile_edge_by_element_size():
    """Tile rows span 64 bytes: 16 float32, 8 float64, 64 int8 positions."""
    assert "ia < 16L" in _c_source((1000, 1000), (1, 0), "float32")
    assert "ia < 8L" in _c_source((1000, 1000), (1, 0), "float64")
    assert "ia < 64L" in _c_source((1000, 1000), (1, 0), "int8")


def test_c_small_blocks_are_one_tile():
    """A (b, a) block within BLOCK_BYTES on both sides is one plain loop (it stays in L1):
    batches of 128 x 64 float32 (32 KB); 128 x 128 (64 KB) is tiled."""
    small = _c_source((32, 8, 128, 64), (0, 1, 3, 2))
    assert "ia < 128L" in small and "tb" not in small.split("k0_transpose(")[1]
    assert "ia < 16L" in _c_source((32, 8, 128, 128), (0, 1, 3, 2))


# -- GPU --------------------------------------------------------------------------------------

@pytest.fixture
def quick_build(monkeypatch):
    """PoCL compiles ~3x faster without optimization; the text's semantics are what is tested."""
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")


@pytest.mark.parametrize("backend", [OPENCL])
@pytest.mark.parametrize("dtype", GPU_DTYPES)
def test_opencl_forward(backend, dtype, quick_build):
    _forward(backend, dtype)


@pytest.mark.parametrize("backend", [OPENCL])
def test_opencl_backward(backend, quick_build):
    _backward(backend, "float32")


@pytest.mark.parametrize("backend", [OPENCL])
def test_opencl_optimized_build(backend):
    """The default (optimized) PoCL build of the tiled and row kernels, with several
    work-groups striding over the tiles."""
    _forward(backend, "float32", [((1000, 1030), (1, 0)), ((4, 64, 8, 33), (0, 2, 1, 3)),
                                  ((33, 5, 17), (2, 1, 0))])


def _gpu_text(cases, dtype="float32"):
    phs = [gc.placeholder(s, dtype=dtype, name=f"x{i}") for i, (s, _) in enumerate(cases)]
    f = gc.compile(phs, [gc.transpose(x, p) for x, (_, p) in zip(phs, cases)], backend="numpy")
    return render_gpu(lower_gpu(f.program, [s for s, _ in cases]))


def test_gpu_kernel_kinds():
    """Moving the contiguous axis: a 32 x 33 local tile between two barriers, work-groups of
    256 (32 x 8) threads; the last axis kept: one thread per element (no local memory)."""
    text, launches = _gpu_text([((100, 33), (1, 0)), ((4, 17, 3, 33), (0, 2, 1, 3))])
    tiled, rows = text.split("k0_transpose(")[1], text.split("k1_transpose(")[1]
    assert "GC_LOCAL float tile[32][33];" in tiled and tiled.count("GC_BARRIER()") == 2
    assert "GC_LOCAL" not in rows and "GC_BARRIER" not in rows
    assert launches[0].local == (256, 1, 1) and launches[0].groups == (8, 1, 1)


def test_gpu_wide_index_math():
    """Above 2**31 elements the tiled kernel's index math is 64-bit (rendered, not run)."""
    text, _ = _gpu_text([((65536, 32769), (1, 0))], "uint8")
    assert "for (gc_i64 t = GC_GROUP_ID(0);" in text and "32769L" in text


@pytest.mark.skipif("not __import__('graphc.runtime.nvrtc', fromlist=['x'])"
                    ".cubin_compiler_available()", reason="neither NVRTC nor nvcc found")
def test_cuda_text_compiles_to_cubin():
    """The CUDA dialect of the tiled and row kernels, every GPU dtype: an sm_90 cubin (so
    shared-memory use and launch bounds are checked by the real compiler)."""
    from graphc.runtime import nvrtc
    from graphc.runtime.gpu_common import expand_includes
    names = set()
    texts = []
    for dtype in GPU_DTYPES:
        text, launches = _gpu_text(CASES[:8], dtype)
        names |= {launch.function for launch in launches}
        texts.append(text.replace("void k", f"void {dtype}_k"))
    # one translation unit: kernels of every dtype, renamed apart
    source = expand_includes("\n".join(texts))
    cubin = nvrtc.compile_cubin(source, "graphc_transpose", arch="sm_90")
    assert cubin[:4] == b"\x7fELF"
    for dtype in GPU_DTYPES:
        for n in names:
            assert f"{dtype}_{n}".encode() in cubin


# -- a transposed fill ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", [C, OPENCL])
def test_transposed_fill_is_a_fill(backend, quick_build):
    """The backward of a transpose under a plain sum transposes a fill of ones: lowering folds
    it into one fill of the transposed shape (no transpose kernel, the shape taken from a view),
    with the same values as numpy's."""
    x = gc.placeholder((33, 5, 17), name="x")
    y = gc.transpose(x * 3.0, (2, 0, 1))
    merged = gc.reshape(gc.transpose(x, (1, 0, 2)), (5, 33 * 17))  # the fill is reshaped first
    outs = [y] + gc.grad(gc.sum(y), [x]) + gc.grad(gc.mean(gc.transpose(x, (1, 2, 0))), [x]) \
        + gc.grad(gc.sum(merged), [x])
    f = gc.compile([x], outs, backend="numpy")
    kinds = [(k.kind, k.node.op) for k in lower(f.program, [(33, 5, 17)]).kernels]
    # the forward transposes only (y; the mean's input; merged's, a view of it being the
    # fill's shape source)
    assert kinds.count(("transpose", "transpose")) == 3, kinds
    X = np.random.default_rng(3).standard_normal((33, 5, 17)).astype("float32")
    ref = f(X)
    got = gc.compile([x], outs, backend=backend)(X)
    assert np.array_equal(ref[1], np.full(X.shape, 3.0, "float32"))
    for g, r in zip(got, ref):
        assert g.shape == r.shape and np.array_equal(g, r)


# -- transposes folded into batched GEMMs -----------------------------------------------------

def _bmm_program():
    """q @ k^T (3-D and 4-D), a transposed 2-D weight broadcast over a batch, broadcast batch
    axes, a transposed product, and their gradients (which transpose operands and products)."""
    rng = np.random.default_rng(5)
    shapes = [(3, 17, 33), (3, 5, 33), (2, 3, 17, 8), (2, 3, 5, 8), (4, 17, 33), (5, 33),
              (2, 1, 17, 33), (3, 5, 33)]
    phs = [gc.placeholder(s, name=f"m{i}") for i, s in enumerate(shapes)]
    q, k, q4, k4, x, w, u, v = phs
    outs = [q @ gc.transpose(k, (0, 2, 1)),                       # (3, 17, 5)
            q4 @ gc.transpose(k4, (0, 1, 3, 2)),                  # (2, 3, 17, 5)
            x @ gc.transpose(w),                                  # (4, 17, 5)
            u @ gc.transpose(v, (0, 2, 1)),                       # (2, 3, 17, 5)
            gc.transpose(gc.transpose(q, (0, 2, 1)) @ q, (0, 2, 1))]  # (3, 33, 33)^T
    cost = sum(gc.sum(o * gc.constant(rng.standard_normal(o.shape).astype("float32")))
               for o in outs)
    outs += gc.grad(cost, phs)
    arrays = [rng.standard_normal(s).astype("float32") for s in shapes]
    return phs, outs, arrays


def test_batched_transposes_fold_into_the_gemm():
    """Every transpose of the last two axes of a batched operand or product is a trans flag of
    a ``bmm``.  Left: the gradients of the operands broadcast over batch axes: w's, one 2-D
    product over all rows (ops/core._matmul_grad) transposed back to w^T's layout, and v's, a
    batch sum of x^T g that is transposed (a reduction, not a product)."""
    phs, outs, arrays = _bmm_program()
    f = gc.compile(phs, outs, backend="numpy")
    kernels = lower(f.program, [a.shape for a in arrays]).kernels
    left = [(tuple(k.node.shape), k.node.inputs[0].op) for k in kernels if k.kind == "transpose"]
    assert left == [((5, 33), "dense"), ((3, 5, 33), "sum")], left
    flags = {(k.node.attrs["trans_a"], k.node.attrs["trans_b"]) for k in kernels
             if k.node.op == "bmm"}
    assert {(False, True), (True, False)} <= flags


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_batched_transposed_gemms_match_numpy(backend, quick_build):
    phs, outs, arrays = _bmm_program()
    ref = gc.compile(phs, outs, backend="numpy")(*arrays)
    got = gc.compile(phs, outs, backend=backend)(*arrays)
    for i, (g, r) in enumerate(zip(got, ref)):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4 * max(1, np.abs(r).max()),
                                   err_msg=f"output {i}")


@pytest.mark.skipif("not __import__('graphc.runtime.nvrtc', fromlist=['x'])"
                    ".cubin_compiler_available()", reason="neither NVRTC nor nvcc found")
def test_cuda_batched_transposed_gemms_compile():
    from graphc.runtime import nvrtc
    from graphc.runtime.gpu_common import expand_includes
    phs, outs, arrays = _bmm_program()
    f = gc.compile(phs, outs, backend="numpy")
    text, launches = render_gpu(lower_gpu(f.program, [a.shape for a in arrays]))
    cubin = nvrtc.compile_cubin(expand_includes(text), "graphc_bmm", arch="sm_90")
    assert cubin[:4] == b"\x7fELF"
    # (m, n, k, A, lda, trans_a, B, ldb, trans_b, ...): both flags are used
    bmm = [launch for launch in launches if launch.function.endswith("_bmm")]
    assert {(launch.args[5].value, launch.args[8].value) for launch in bmm} >= {(0, 1), (1, 0)}
