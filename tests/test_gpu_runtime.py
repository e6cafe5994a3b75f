"""GPU foundation tests that run without a GPU.

(a) the GEMM template (+ dialect math) compiles to sm_90 cubins through
    graphc.runtime.nvrtc (NVRTC, or nvcc);
(b) the same kernel text runs on OpenCL (PoCL on the CPU in CI) and matches a
    float64 numpy reference for odd shapes, all transposes, accumulate,
    padded leading dimensions and an epilogue;
(c) gc_uniform matches the numpy formula bit for bit;
(d) with CuPy and a CUDA device, the GEMM runs through graphc.runtime.cuda.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from graphc.runtime import gpu_common, nvrtc
from graphc.runtime.gpu_common import BackendUnavailable, gemm_launch_geometry, gemm_source

ELF_MAGIC = b"\x7fELF"

BIAS_RELU = dict(
    epilogue="gc_fmaxf((acc) + ep0[j], 0.0f)",
    extra_params=", const GC_GLOBAL float* GC_RESTRICT ep0",
)

# Every dialect math name, float and double, in one kernel (mapping check).
MATH_KERNEL = r"""
GC_KERNEL void gc_math_probe(GC_GLOBAL float* GC_RESTRICT out,
                             const GC_GLOBAL float* GC_RESTRICT x, int n)
{
    int i = GC_GLOBAL_ID(0);
    if (i >= n) return;
    float v = x[i];                       /* in (0.1, 0.9) */
    double d = (double)v;
    GC_GLOBAL float* o = out + 18 * i;
    o[0] = gc_expf(v);   o[1] = gc_logf(v);    o[2] = gc_sqrtf(v);
    o[3] = gc_fabsf(-v); o[4] = gc_tanhf(v);   o[5] = gc_powf(v, 1.5f);
    o[6] = gc_erff(v);   o[7] = gc_log1pf(v);  o[8] = gc_expm1f(v);
    o[9] = gc_cosf(v);   o[10] = gc_sinf(v);   o[11] = gc_fmaxf(v, 0.5f);
    o[12] = gc_fminf(v, 0.5f); o[13] = gc_floorf(v * 10.0f);
    o[14] = (float)(gc_exp(d) + gc_log(d) + gc_sqrt(d) + gc_fabs(-d) + gc_tanh(d));
    o[15] = (float)(gc_pow(d, 1.5) + gc_erf(d) + gc_log1p(d) + gc_expm1(d));
    o[16] = (float)(gc_cos(d) + gc_sin(d) + gc_fmax(d, 0.5) + gc_fmin(d, 0.5) + gc_floor(d * 10.0));
    o[17] = (float)(GC_LOCAL_SIZE(0) > 0) + (float)(GC_GROUP_ID(0) >= 0) + (float)(GC_NUM_GROUPS(0) > 0)
          + (float)(GC_LOCAL_ID(0) < GC_LOCAL_SIZE(0));
}
"""


def _math_reference(x):
    x64 = x.astype(np.float64)
    from math import erf

    erf_v = np.vectorize(erf)
    cols = [
        np.exp(x64), np.log(x64), np.sqrt(x64), x64, np.tanh(x64), x64**1.5,
        erf_v(x64), np.log1p(x64), np.expm1(x64), np.cos(x64), np.sin(x64),
        np.maximum(x64, 0.5), np.minimum(x64, 0.5), np.floor(x.astype(np.float32) * np.float32(10)),
        np.exp(x64) + np.log(x64) + np.sqrt(x64) + x64 + np.tanh(x64),
        x64**1.5 + erf_v(x64) + np.log1p(x64) + np.expm1(x64),
        np.cos(x64) + np.sin(x64) + np.maximum(x64, 0.5) + np.minimum(x64, 0.5) + np.floor(x64 * 10.0),
        np.full_like(x64, 4.0),
    ]
    return np.stack(cols, axis=1)


RNG_KERNEL = r"""
GC_KERNEL void gc_rng_probe(GC_GLOBAL float* GC_RESTRICT out, int n, gc_u64 seed, gc_u64 counter)
{
    int i = GC_GLOBAL_ID(0);
    if (i < n) out[i] = gc_uniform(seed, counter, (gc_u64)i);
}
"""


def gemm_program_text():
    return "\n".join(
        [
            gemm_source("gc_test_gemm"),
            gemm_source("gc_test_gemm_bias_relu", **BIAS_RELU),
            gemm_source("gc_test_gemm_tm4", tm=4),
            MATH_KERNEL,
            RNG_KERNEL,
        ]
    )


def gemm_f64_text():
    return gemm_source("gc_test_gemm_f64", real="double")


# --------------------------------------------------------------------------- (a)
def _backends():
    out = []
    if nvrtc.nvrtc_available():
        out.append("nvrtc")
    if nvrtc.nvcc_path():
        out.append("nvcc")
    return out


@pytest.mark.skipif(not nvrtc.cubin_compiler_available(), reason="neither NVRTC nor nvcc found")
@pytest.mark.parametrize("backend", ["nvrtc", "nvcc"])
def test_gemm_compiles_to_sm90_cubin(backend):
    if backend not in _backends():
        pytest.skip(f"{backend} not available")
    src = gemm_program_text() + gemm_f64_text()
    cubin = nvrtc.compile_cubin(src, "gc_test_gemm", arch="sm_90", backend=backend)
    assert cubin[:4] == ELF_MAGIC
    for name in (b"gc_test_gemm", b"gc_test_gemm_bias_relu", b"gc_test_gemm_tm4",
                 b"gc_test_gemm_f64", b"gc_math_probe", b"gc_rng_probe"):
        assert name in cubin


@pytest.mark.skipif(not nvrtc.cubin_compiler_available(), reason="neither NVRTC nor nvcc found")
def test_compile_error_carries_log():
    with pytest.raises(nvrtc.NVRTCError, match="no_such_function"):
        nvrtc.compile_cubin("GC_KERNEL void broken(GC_GLOBAL float* x) { x[0] = no_such_function(); }",
                            "broken")


def test_dialect_and_template_text():
    cu = gpu_common.dialect_source("cuda")
    cl = gpu_common.dialect_source("opencl")
    assert "gc_uniform" in cu and cl.startswith("#define GC_OPENCL 1")
    with pytest.raises(ValueError):
        gpu_common.dialect_source("metal")
    g = gemm_launch_geometry(130, 257)
    assert g.grid == (3, 2, 1) and g.block == (256, 1, 1)
    assert g.global_size == (768, 2) and g.local_size == (256, 1) and not g.empty
    assert gemm_launch_geometry(0, 5).empty
    assert gemm_launch_geometry(64, 64, tm=4).grid == (1, 1, 1)


# --------------------------------------------------------------------------- (b)
@pytest.fixture(scope="module")
def ocl():
    try:
        from graphc.runtime import opencl
    except Exception as e:  # pragma: no cover
        pytest.skip(f"graphc.runtime.opencl import failed: {e}")
    try:
        return opencl.get_device()
    except BackendUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def ocl_prog(ocl):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ocl.build(gemm_program_text())


def _padded(rng, rows, cols, pad, dtype):
    """(array rows x cols, storage rows x (cols+pad) with the array in it, ld)."""
    a = rng.standard_normal((rows, cols)).astype(dtype)
    store = np.full((rows, cols + pad), np.nan, dtype=dtype)  # padding never read
    store[:, :cols] = a
    return a, store, cols + pad


def _run_gemm(dev, kernel, M, N, K, ta, tb, accumulate, pad, rng, dtype=np.float32,
              tm=8, bias=None):
    A, As, lda = _padded(rng, K if ta else M, M if ta else K, pad, dtype)
    B, Bs, ldb = _padded(rng, N if tb else K, K if tb else N, pad, dtype)
    C0, Cs, ldc = _padded(rng, M, N, pad, dtype)
    bA, bB, bC = dev.to_device(As), dev.to_device(Bs), dev.to_device(Cs)
    args = [M, N, K, bA, lda, ta, bB, ldb, tb, bC, ldc, int(accumulate)]
    if bias is not None:
        args.append(dev.to_device(bias))
    g = gemm_launch_geometry(M, N, tm=tm)
    dev.launch(kernel, g.global_size, g.local_size, args)
    out = dev.download(bC, Cs.shape, dtype)
    opA = (A.T if ta else A).astype(np.float64)
    opB = (B.T if tb else B).astype(np.float64)
    ref = opA @ opB
    if accumulate:
        ref = ref + C0
    if bias is not None:
        ref = np.maximum(ref + bias.astype(np.float64)[None, :], 0.0)
    got = out[:, :N]
    if pad:
        assert np.isnan(out[:, N:]).all(), "GEMM wrote into the padding of C"
    return got, ref


def _tol(K, dtype):
    eps = 1e-6 if dtype == np.float32 else 1e-14
    return 8 * eps * (K + 1) ** 0.5 * 4 + (1e-6 if dtype == np.float32 else 1e-13)


SIZES = (1, 3, 17, 33, 65, 100, 130)
# every size in every position, a few edge combos, and K = 0
SHAPES = sorted(
    {(m, n, k) for m, n, k in zip(SIZES, SIZES[2:] + SIZES[:2], SIZES[4:] + SIZES[:4])}
    | {(m, n, k) for m, n, k in zip(SIZES, SIZES[5:] + SIZES[:5], SIZES[1:] + SIZES[:1])}
    | {(1, 1, 1), (130, 130, 130), (129, 1, 9), (1, 257, 8), (5, 7, 0)}
)


def test_opencl_gemm_matches_numpy(ocl, ocl_prog):
    k = ocl.kernel(ocl_prog, "gc_test_gemm")
    rng = np.random.default_rng(1234)
    for n_case, ((M, N, K), (ta, tb)) in enumerate(
        itertools.product(SHAPES, itertools.product((0, 1), (0, 1)))
    ):
        accumulate = n_case % 2
        pad = (0, 3, 1)[n_case % 3]
        got, ref = _run_gemm(ocl, k, M, N, K, ta, tb, accumulate, pad, rng)
        err = np.abs(got - ref).max() if got.size else 0.0
        scale = max(1.0, np.abs(ref).max() if ref.size else 1.0)
        assert err <= _tol(K, np.float32) * scale, (M, N, K, ta, tb, accumulate, pad, err)


def test_opencl_gemm_bias_relu_epilogue(ocl, ocl_prog):
    k = ocl.kernel(ocl_prog, "gc_test_gemm_bias_relu")
    rng = np.random.default_rng(7)
    for (M, N, K), ta, tb, acc in [((65, 100, 130), 0, 0, 0), ((130, 33, 17), 1, 1, 1),
                                   ((3, 130, 65), 0, 1, 1), ((17, 1, 100), 1, 0, 0),
                                   ((9, 11, 0), 0, 0, 1)]:
        bias = rng.standard_normal(N).astype(np.float32)
        got, ref = _run_gemm(ocl, k, M, N, K, ta, tb, acc, 2, rng, bias=bias)
        assert (got >= 0).all()
        assert np.abs(got - ref).max() <= _tol(K, np.float32) * max(1.0, np.abs(ref).max())


def test_opencl_gemm_tm4_variant(ocl, ocl_prog):
    k = ocl.kernel(ocl_prog, "gc_test_gemm_tm4")
    rng = np.random.default_rng(3)
    for (M, N, K), ta, tb in [((65, 33, 100), 0, 1), ((100, 130, 17), 1, 0), ((1, 3, 1), 1, 1)]:
        got, ref = _run_gemm(ocl, k, M, N, K, ta, tb, 1, 1, rng, tm=4)
        assert np.abs(got - ref).max() <= _tol(K, np.float32) * max(1.0, np.abs(ref).max())


def test_opencl_gemm_f64(ocl):
    if not ocl.has_fp64:
        pytest.skip("device has no cl_khr_fp64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = ocl.build(gemm_f64_text())
    k = ocl.kernel(prog, "gc_test_gemm_f64")
    rng = np.random.default_rng(5)
    for (M, N, K), ta, tb in [((33, 65, 130), 0, 0), ((130, 17, 3), 1, 1)]:
        got, ref = _run_gemm(ocl, k, M, N, K, ta, tb, 1, 1, rng, dtype=np.float64)
        assert np.abs(got - ref).max() <= 1e-12 * max(1.0, np.abs(ref).max())


def test_opencl_dialect_math(ocl, ocl_prog):
    k = ocl.kernel(ocl_prog, "gc_math_probe")
    n = 37
    x = np.linspace(0.11, 0.89, n).astype(np.float32)
    bo = ocl.empty(n * 18 * 4)
    ocl.launch(k, (64,), (32,), [bo, ocl.to_device(x), n])
    got = ocl.download(bo, (n, 18), np.float32)
    np.testing.assert_allclose(got, _math_reference(x), rtol=2e-5, atol=2e-6)


# --------------------------------------------------------------------------- (c)
def numpy_uniform(seed, counter, index):
    """Reference for gc_uniform: uint64 wrapping arithmetic, top 24 bits / 2^24."""
    u = np.uint64
    idx = np.asarray(index, dtype=u)
    with np.errstate(over="ignore"):
        z = (u(seed) * u(0x9E3779B97F4A7C15)
             + u(counter) * u(0xD1B54A32D192ED03)
             + idx * u(0xBF58476D1CE4E5B9))
        z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
        z = z ^ (z >> u(31))
    return (z >> u(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


@pytest.mark.parametrize("seed,counter", [(0, 0), (42, 7), (2**64 - 1, 123456789), (2**63 + 5, 2**40)])
def test_opencl_uniform_matches_numpy(ocl, ocl_prog, seed, counter):
    k = ocl.kernel(ocl_prog, "gc_rng_probe")
    n = 10000
    bo = ocl.empty(n * 4)
    ocl.launch(k, (((n + 255) // 256) * 256,), (256,), [bo, n, np.uint64(seed), np.uint64(counter)])
    got = ocl.download(bo, (n,), np.float32)
    ref = numpy_uniform(seed, counter, np.arange(n))
    assert got.view(np.uint32).tolist() == ref.view(np.uint32).tolist()
    assert got.min() >= 0.0 and got.max() < 1.0


# --------------------------------------------------------------------------- (d)
def _cuda_ok():
    try:
        from graphc.runtime import cuda

        return cuda.cuda_available()
    except Exception:
        return False


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_ok(), reason="needs CuPy and a CUDA device")
def test_cuda_gemm_matches_numpy():
    from graphc.runtime import cuda

    dev = cuda.get_device()
    mod = dev.build(gemm_program_text())
    k = dev.kernel(mod, "gc_test_gemm")
    kb = dev.kernel(mod, "gc_test_gemm_bias_relu")
    rng = np.random.default_rng(11)
    for (M, N, K), ta, tb, acc in [((65, 100, 130), 0, 0, 0), ((130, 33, 17), 1, 1, 1),
                                   ((1, 3, 1), 0, 1, 1), ((257, 129, 300), 1, 0, 0),
                                   ((5, 7, 0), 0, 0, 1)]:
        A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        B = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        C0 = rng.standard_normal((M, N)).astype(np.float32)
        bias = rng.standard_normal(N).astype(np.float32)
        g = gemm_launch_geometry(M, N)
        ref = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64)
        if acc:
            ref = ref + C0
        for kern, extra in ((k, []), (kb, [dev.to_device(bias)])):
            dC = dev.to_device(C0)
            args = [M, N, K, dev.to_device(A), A.shape[1], ta, dev.to_device(B), B.shape[1], tb,
                    dC, N, acc] + extra
            dev.launch(kern, g.grid, g.block, args)
            got = dev.download(dC)
            want = np.maximum(ref + bias[None, :], 0.0) if extra else ref
            assert np.abs(got - want).max() <= _tol(K, np.float32) * max(1.0, np.abs(want).max())
    # RNG equality on the GPU too
    kr = dev.kernel(mod, "gc_rng_probe")
    out = dev.empty((10000,), np.float32)
    dev.launch(kr, (40, 1, 1), (256, 1, 1), [out, 10000, np.uint64(42), np.uint64(7)])
    got = dev.download(out)
    assert got.view(np.uint32).tolist() == numpy_uniform(42, 7, np.arange(10000)).view(np.uint32).tolist()
