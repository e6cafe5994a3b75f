"""Review 9 (adversarial, of the GEMM core object, reductions with prologues, transposes /
bmm and review 8's changes): regressions.

* F1 the numpy backend raised OverflowError for an integer op with a literal equal to its
  dtype's minimum: ``int8 x + (-128)`` (and ``x - 128``, ``-128 - x``, ``i32 + 2**31`` once
  review 8 wrapped 2**31 to -2**31) printed as ``a0 - 128``, and 128 is not an int8 (NumPy's
  NEP 50 rules).  The C backend gave the wrapped values.
* F2 uint64 kernels computed in int64_t on C and OpenCL: values from 2**63 on compared (max,
  min, <, ==, where, |x|, a max reduction) as negative numbers, against the numpy reference.
  They compute in uint64_t now; the negative literals comparisons keep (x > -5 is true for
  every unsigned x, as in numpy) compare as floats; uint64 against signed operands compares
  in double (by value, as numpy; was int64: 2**64 - 5 > -3 false).
* F3 GRAPHC_PROFILE=1 with GRAPHC_CFLAGS without -fopenmp: the per-kernel timers called
  omp_get_wtime, undefined without OpenMP (now a link error under -z defs, before a load
  error).  The timers call gc_runtime.h's gc_wtime.
* F4 GRAPHC_CFLAGS with -std=c99: gc_gemm.h's C11 aligned_alloc was implicitly declared as
  returning int, and the first GEMM crashed the interpreter (SIGSEGV).  gc_gemm.h declares
  it before C11, and modules and the GEMM core compile with
  -Werror=implicit-function-declaration (an error, not a crash, for the next such function).
* F5 ``graphc cache clear`` deleted every ``*.o`` in GRAPHC_CORE_DIR (a user pointing it at a
  build directory lost its objects); it deletes the GEMM core objects only (named by a key).
* F6 the GEMM core lives outside GRAPHC_CACHE_DIR (~/.cache/graphc/core), keyed by compiler and
  flags only: built with -march=native on one machine, it was linked into the modules of
  another machine sharing the home directory (other CPU: illegal instructions), even with a
  per-machine GRAPHC_CACHE_DIR.  A -march=native core's key has the host CPU in it.
* F7 a module that failed to compile for its own reasons (GRAPHC_CFLAGS, a codegen bug) had the
  shared GEMM core objects deleted and rebuilt before the error (seconds per failed compile,
  and other processes linking them at that moment failed too): only a link error naming the
  core rebuilds it.
* F8 ``**`` of integer operands on the float path (an exponent above 64 or negative, an
  integer tensor exponent, ``2 ** int_tensor``): float32 results, but the numpy reference took
  numpy's integer power first (int32 3 ** 25 wrapped: 1.18e9 against C's 8.47e11; int8
  x ** 1000 raised OverflowError).  The integer operands are cast to float32 first, as the
  compiled backends compute.  (Session 10: a negative exponent is refused when the graph is
  built, see test_session10_ops.py, and an integer tensor exponent of an integer base gives
  PyTorch's integer result, see test_session10_ipow.py.  Session 11: so does an integer
  tensor to a Python int above 64, as PyTorch (int8 x ** 65 is int8), see
  test_session11_ipow.py; the test below now pins those integer results.)
* F9 GRAPHC_CFLAGS with -flto: the GEMM core was a slim LTO object (GIMPLE, no driver symbol in
  its string table), check_object rejected it after every build, and every module with a
  matmul failed with "corrupt cache entry ... no gc__gemm_run_f32" (lead's modules compiled
  in one step did not).  The core is compiled with -fno-lto after the user's flags.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL, c_available


@pytest.mark.parametrize("backend", ["numpy", C])
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_f1_integer_literal_at_the_dtype_minimum(backend, dtype):
    lo = int(np.iinfo(dtype).min)
    x = gc.placeholder((3,), dtype, name="x")
    y = gc.placeholder((3,), dtype, name="y")
    xs, ys = np.array([1, -2, 3], dtype), np.array([2, 5, -7], dtype)
    outs = [x + lo, x - lo, lo - x, x + (-lo), gc.maximum(x, lo), x * lo + y * lo]
    got = gc.compile([x, y], outs, backend=backend)(xs, ys)
    w = np.array(lo, dtype)
    with np.errstate(over="ignore"):
        want = [xs + w, xs - w, w - xs, xs + w, np.maximum(xs, w), xs * w + ys * w]
    for g, e in zip(got, want):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


def test_f1_printed_form_keeps_negative_literals_whole():
    import inspect

    import sympy as sp

    from graphc.symbolic import A, numpy_function
    f = numpy_function(A[0] + sp.Integer(-128) * A[1] + sp.Integer(-128), 2)
    a = np.array([1, 2], "int8")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(f(a, a), a + np.int8(-128) * a + np.int8(-128))
    assert "- 128" not in inspect.getsource(f)


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_f2_uint64_compares_unsigned(backend, monkeypatch):
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")
    big = 2**64 - 5
    xs = np.array([big, 5, 2**63, 2**63 - 1, 0, 7], "uint64")
    ys = np.array([3, big, 1, 2**63, 9, 7], "uint64")
    zs = np.array([1, 200, 3, 4, 5, 255], "uint8")
    x = gc.placeholder((6,), "uint64", name="x")
    y = gc.placeholder((6,), "uint64", name="y")
    z = gc.placeholder((6,), "uint8", name="z")
    outs = [gc.maximum(x, y), gc.minimum(x, z), gc.greater(x, y), gc.less(x, z),
            gc.equal(x, y), gc.where(gc.greater(x, y), x, y), gc.abs(x), x - y, -x, x * z + 3,
            gc.greater(x, -5), gc.less(x, -5), gc.equal(x, -1), gc.maximum(x, -1),
            gc.max(x * 1), gc.sum(x + y), gc.cast(x, "float64"), x / y, gc.max(x + 2),
            gc.greater(x * 1.0, y * 1.0)]
    w = gc.placeholder((6,), "int64", name="w")  # signed: compared by value, as numpy does
    ws = np.array([-3, 7, 1, -1, 0, 8], "int64")
    outs += [gc.greater(x, w), gc.less(w, x), gc.sum(gc.greater(x, w) * 1)]
    want = gc.compile([x, y, z, w], outs, backend="numpy")(xs, ys, zs, ws)
    got = gc.compile([x, y, z, w], outs, backend=backend)(xs, ys, zs, ws)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, i
        np.testing.assert_array_equal(g, w, err_msg=f"output {i}")
    np.testing.assert_array_equal(want[0], np.maximum(xs, ys))  # the reference is numpy's
    np.testing.assert_array_equal(want[10], np.ones(6, bool))
    np.testing.assert_array_equal(want[-3], xs > ws)


_STEP = """
import numpy as np, graphc as gc
x = gc.placeholder((None, 64), name="x")
W = gc.parameter(np.full((64, 64), 0.01, "float32"), name="W")
W64 = gc.parameter(np.full((64, 8), 0.01), name="W64")
f = gc.compile([x], [gc.sum(gc.tanh(x @ W)), gc.cast(x, "float64") @ W64], backend="c")
xs = np.ones((256, 64), "float32")
for _ in range(2):
    s, y = f(xs)
assert abs(float(s) - 256 * 64 * np.tanh(0.64)) < 1e-2 * 256 * 64, s
np.testing.assert_allclose(y, np.full((256, 8), 0.64), rtol=1e-12)
prof = f._exe.profile()
print("profile", len(prof), all(t >= 0 for _, t in prof), sum(t for _, t in prof) > 0)
"""


def _run_step(tmp_path, cflags, profile):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"),
               GRAPHC_CORE_DIR=str(tmp_path / "core"), GRAPHC_CFLAGS=cflags)
    env.pop("GRAPHC_PROFILE", None)
    if profile:
        env["GRAPHC_PROFILE"] = "1"
    return subprocess.run([sys.executable, "-c", _STEP], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_f3_profile_without_openmp(tmp_path):
    p = _run_step(tmp_path, "-O1", profile=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert " True True" in p.stdout.split("profile")[1]  # timers ran and measured time


@pytest.mark.skipif(not c_available(), reason="no C compiler")
@pytest.mark.parametrize("cflags,profile", [("-O1 -std=c99", False),
                                            ("-O1 -fopenmp -std=c99", True)])
def test_f4_c99_does_not_crash(tmp_path, cflags, profile):
    p = _run_step(tmp_path, cflags, profile)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "profile" in p.stdout


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_f9_lto_flags(tmp_path):
    p = _run_step(tmp_path, "-O1 -fopenmp -flto", profile=False)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "profile" in p.stdout


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_f5_cache_clear_keeps_other_object_files(tmp_path, monkeypatch, capsys):
    from graphc.cli import main
    core = tmp_path / "build"
    core.mkdir()
    mine = core / "main.o"
    mine.write_bytes(b"not graphc's")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(core))
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], x @ gc.constant(np.ones((3, 2), "float32")), backend="c")
    np.testing.assert_allclose(f(np.ones((2, 3), "float32")), np.full((2, 2), 3.0))
    assert main(["cache", "list"]) == 0
    assert f"1 compiled GEMM driver object(s) in {core}" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert sorted(core.glob("*.o")) == [mine] and mine.read_bytes() == b"not graphc's"


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_f6_native_core_is_per_cpu(tmp_path, monkeypatch):
    from graphc.runtime import gemm_core
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(tmp_path / "core"))
    key = gemm_core.core_key
    native, fixed = ["-O2", "-march=native"], ["-O2", "-march=x86-64"]
    here = key("cc", native, 32)
    monkeypatch.setattr(gemm_core, "host_cpu", lambda: "another CPU")
    assert key("cc", native, 32) != here
    other = key("cc", fixed, 32)
    monkeypatch.undo()
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(tmp_path / "core"))
    assert key("cc", fixed, 32) == other  # no -march=native: the CPU does not matter
    for cpu, scale in (("cpu a", 1.0), ("cpu b", 2.0)):
        monkeypatch.setattr(gemm_core, "host_cpu", lambda cpu=cpu: cpu)
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / cpu))
        x = gc.placeholder((None, 3), name="x")
        f = gc.compile([x], x @ gc.constant(np.full((3, 2), scale, "float32")), backend="c")
        np.testing.assert_allclose(f(np.ones((2, 3), "float32")), np.full((2, 2), 3 * scale))
    from graphc.runtime.cpu import flags
    if any(f.endswith("=native") for f in flags()):
        assert len(list((tmp_path / "core").glob("*.o"))) == 2


def test_f2_uint64_cuda_text_compiles():
    from graphc.codegen.gpu import lower_gpu, render_gpu
    from graphc.runtime import nvrtc
    from graphc.runtime.gpu_common import expand_includes
    if nvrtc.nvcc_path() is None:
        pytest.skip("no nvcc")
    x = gc.placeholder((6,), "uint64", name="x")
    y = gc.placeholder((6,), "uint64", name="y")
    outs = [gc.maximum(x, y), gc.greater(x, -5), gc.where(gc.less(x, y), x, y), gc.max(x * 3)]
    f = gc.compile([x, y], outs, backend="numpy")
    text, _ = render_gpu(lower_gpu(f.program, [(6,), (6,)]))
    assert "gc_u64" in text
    cubin = nvrtc.compile_cubin(expand_includes(text), "u64", arch="sm_90", backend="nvcc")
    assert cubin[:4] == b"\x7fELF"


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_f7_module_errors_keep_the_core(tmp_path, monkeypatch):
    from graphc.runtime import cpu
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(tmp_path / "core"))
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], x @ gc.constant(np.ones((3, 2), "float32")), backend="c")
    f(np.ones((2, 3), "float32"))
    (core,) = (tmp_path / "core").glob("*.o")
    before = core.stat()
    # a module of the same flags using the same core, with an error of its own
    with pytest.raises(cpu.CompileError, match="broken module"):
        cpu.build_module(f.source + '\n#error "broken module"\n')
    after = core.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("backend", ["numpy", C])
def test_f8_integer_operands_of_a_float_power(backend):
    x = gc.placeholder((5,), "int8", name="x")
    y = gc.placeholder((5,), "int32", name="y")
    xs = np.array([3, 2, -7, 0, 1], "int8")
    ys = np.array([25, 40, 3, 0, -2], "int32")
    outs = [x ** 65, x ** 1000, y ** 3]
    got = gc.compile([x, y], outs, backend=backend)(xs, ys)
    # session 11: int8 ** 65 is int8 with wrap-around, as PyTorch; int8 ** 1000 too (PyTorch
    # refuses an exponent outside int8: Python's power modulo 2**8 is the oracle)
    torch = pytest.importorskip("torch")
    modular = np.array([pow(int(v), 1000, 256) for v in xs], np.uint8).astype("int8")
    want = [(torch.from_numpy(xs) ** 65).numpy(), modular, ys ** 3]
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == ("int32" if i == 2 else "int8") == w.dtype, i
        np.testing.assert_array_equal(g, w, err_msg=f"output {i}")
