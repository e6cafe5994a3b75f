"""Session 12: the wide GEMM micro-tile (kernels/gc_gemm.h, GC_GEMM_WIDE: 6 x 64 register tiles for
large float products on AVX-512) inside whole training steps, and the GEMM core object built
beside the first module that needs it (graphc/runtime/cpu.py, compile_beside_core)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import c_available

pytestmark = pytest.mark.skipif(not c_available(), reason="no C compiler")


def _mlp_step(backend: str, sizes, batch: int, optimizer: str, steps: int = 2):
    """Losses and parameters after ``steps`` steps of a relu MLP with a fused update."""
    rng = np.random.default_rng(7)
    x = gc.placeholder((None, sizes[0]), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    params, h = [], x
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = gc.parameter((rng.standard_normal((a, b)) / np.sqrt(a)).astype("float32"), name=f"W{i}")
        c = gc.parameter(np.full(b, 0.01, "float32"), name=f"b{i}")
        params += [W, c]
        h = h @ W + c
        if i < len(sizes) - 2:
            h = gc.relu(h)
    loss = gc.cross_entropy(h, y)
    grads = gc.grad(loss, params)
    opt = gc.optim.SGD(lr=0.05) if optimizer == "sgd" else gc.optim.Adam(lr=1e-3)
    updates = opt.updates(params, grads)
    f = gc.compile([x, y], loss, updates=updates, backend=backend)
    X = rng.standard_normal((batch, sizes[0])).astype("float32")
    Y = rng.integers(0, sizes[-1], batch)
    losses = [float(f(X, Y)) for _ in range(steps)]
    return losses, [p.value.copy() for p in params]


@pytest.mark.parametrize("batch,optimizer", [(263, "sgd"), (520, "adam")])
def test_training_step_through_the_wide_tiles_matches_numpy(batch, optimizer):
    # 263 x 530 x 600 forward, 530 x 263 x 600 weight gradient, 263 x 600 x 530 input
    # gradient: M >= 256, N >= 512, K >= 256 (the wide tiles), with row and column edges
    sizes = [530, 600, 515, 10]
    got_l, got_p = _mlp_step("c", sizes, batch, optimizer)
    want_l, want_p = _mlp_step("numpy", sizes, batch, optimizer)
    np.testing.assert_allclose(got_l, want_l, rtol=2e-5)
    # Adam moves every weight by about lr (1e-3) whatever its gradient's size: where a gradient
    # is near 0, the float32 sums' order (tiles vs numpy's BLAS) changes its step by a few %
    atol = 2e-6 if optimizer == "sgd" else 5e-5
    for g, w in zip(got_p, want_p):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=atol)


def test_wide_dense_forward_with_every_epilogue_shape():
    # relu / bias epilogues, accumulate (x @ W + x @ V: the second product adds to the first)
    rng = np.random.default_rng(2)
    x = gc.placeholder((None, 300), name="x")
    W = rng.standard_normal((300, 577)).astype("float32")
    V = rng.standard_normal((300, 577)).astype("float32")
    b = rng.standard_normal(577).astype("float32")
    out = [gc.relu(x @ gc.constant(W) + gc.constant(b)),
           gc.tanh(x @ gc.constant(W) + x @ gc.constant(V))]
    f = gc.compile([x], out, backend="c")
    X = rng.standard_normal((389, 300)).astype("float32")
    r, t = f(X)
    np.testing.assert_allclose(r, np.maximum(X @ W + b, 0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(t, np.tanh(X @ W + X @ V), rtol=1e-4, atol=1e-4)


@pytest.fixture
def empty_core(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(tmp_path / "core"))
    return tmp_path / "cache" / "kernels", tmp_path / "core"


def _dense(scale: float):
    x = gc.placeholder((None, 9), name="x")
    W = gc.parameter(np.linspace(-1, 1, 9 * 5, dtype="float32").reshape(9, 5), name="W")
    return x, gc.sigmoid(x @ W) * scale


def test_first_module_builds_the_core_beside_itself(empty_core, monkeypatch):
    from graphc.runtime import cpu
    modules, cores = empty_core
    calls = []
    real = cpu.ThreadPoolExecutor

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(cpu, "ThreadPoolExecutor", spy)
    X = np.linspace(-2, 2, 4 * 9, dtype="float32").reshape(4, 9)
    x, out = _dense(2.0)
    got = gc.compile([x], out, backend="c")(X)
    want = gc.compile([x], out, backend="numpy")(X)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert calls == [1] and len(list(cores.glob("*.o"))) == 1
    assert not list(modules.glob("*.o")) and not list(modules.glob("*.tmp*"))
    x, out = _dense(3.0)  # a second module: the core is there, one gcc run as before
    np.testing.assert_allclose(gc.compile([x], out, backend="c")(X), 1.5 * want, rtol=1e-6)
    assert calls == [1]


def test_module_error_beside_the_core_build_is_a_compile_error(empty_core, monkeypatch):
    from graphc.runtime import gemm_core
    from graphc.runtime.cpu import CompileError
    modules, cores = empty_core
    monkeypatch.setattr(gemm_core, "EXTERN_FLAG", "-Dstatic=@")  # breaks the module only
    x, out = _dense(2.0)
    with pytest.raises(CompileError, match="source kept at"):
        gc.compile([x], out, backend="c")(np.ones((2, 9), "float32"))
    assert len(list(cores.glob("*.o"))) == 1  # the core built meanwhile is kept
    assert not list(modules.glob("*.o")) and not list(modules.glob("*.tmp*"))


def test_core_error_beside_the_module_is_a_compile_error(empty_core, monkeypatch):
    from graphc.runtime import gemm_core
    from graphc.runtime.cpu import CompileError
    modules, cores = empty_core
    monkeypatch.setattr(gemm_core, "CORE_FLAGS", gemm_core.CORE_FLAGS + ["-Dstatic=@"])
    x, out = _dense(2.0)
    with pytest.raises(CompileError, match="GEMM driver"):
        gc.compile([x], out, backend="c")(np.ones((2, 9), "float32"))
    assert not list(cores.glob("*.o")) and not list(modules.glob("*.o"))
    assert not list(modules.glob("*.tmp*"))


@pytest.mark.parametrize("pieces", [3, 4])
def test_wide_tiles_with_a_maxout_row_hook(pieces):
    # maxout of a large dense layer: the row hook on the wide tiles' 64-column segments (pieces
    # 4: in the epilogue; 3: groups cut by the segments, in the late pass), forward and backward
    rng = np.random.default_rng(5)
    units = 600 // pieces
    x = gc.placeholder((None, 300), name="x")
    W = gc.parameter(rng.standard_normal((300, units * pieces)).astype("float32"), name="W")
    b = gc.parameter(rng.standard_normal(units * pieces).astype("float32"), name="b")
    h = gc.maxout(x @ W + b, pieces)
    loss = gc.sum(h * h) / 1000.0
    outs = [h] + gc.grad(loss, [x, W])
    X = rng.standard_normal((263, 300)).astype("float32")
    got = gc.compile([x], outs, backend="c")(X)
    want = gc.compile([x], outs, backend="numpy")(X)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-3)
