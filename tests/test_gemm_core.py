"""The GEMM driver as a cached object linked into generated modules (graphc/runtime/gemm_core.py):
built once per compiler and flags, shared by every module, rebuilt when damaged, and the
modules linked with it compute what the numpy backend computes."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

import graphc as gc
from backends import c_available

pytestmark = pytest.mark.skipif(not c_available(), reason="no C compiler")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty module cache and an empty core directory: (modules dir, core dir)."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(tmp_path / "core"))
    return tmp_path / "cache" / "kernels", tmp_path / "core"


def _dense_step(scale: float, hidden: int = 19):
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 13), name="x")
    W = gc.parameter(rng.standard_normal((13, hidden)).astype("float32"), name="W")
    b = gc.parameter(np.zeros(hidden, "float32"), name="b")
    loss = gc.mean(gc.tanh(x @ W + b) ** 2)
    gW, gb = gc.grad(loss, [W, b])
    return x, [W, b], loss, [(W, W - scale * gW), (b, b - scale * gb)]


def _train(backend: str, scale: float, steps: int = 3):
    x, params, loss, updates = _dense_step(scale)
    f = gc.compile([x], loss, updates=updates, backend=backend)
    xs = np.random.default_rng(1).standard_normal((37, 13)).astype("float32")
    losses = [float(f(xs)) for _ in range(steps)]
    return losses, [p.value.copy() for p in params], f


def test_one_core_object_serves_every_module(empty_cache):
    modules, cores_dir = empty_cache
    a, pa, fa = _train("c", 0.1)
    cores = sorted(cores_dir.glob("*.o"))
    assert len(cores) == 1  # float32 only: the double driver is not built
    assert "GC_GEMM_CORE_EXTERN" not in fa.source  # a build flag, not part of the text users see
    b, pb, _ = _train("c", 0.2)  # another graph: another module, the same core
    assert sorted(cores_dir.glob("*.o")) == cores
    assert len(list(modules.glob("*.so"))) == 2
    for scale, got, params in ((0.1, a, pa), (0.2, b, pb)):
        want, wparams = _train("numpy", scale)[:2]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        for g, w in zip(params, wparams):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_float64_and_float32_gemms_in_one_module(empty_cache):
    _, cores_dir = empty_cache
    rng = np.random.default_rng(3)
    x32 = gc.placeholder((None, 7), name="x32")
    x64 = gc.placeholder((None, 7), "float64", name="x64")
    w32 = rng.standard_normal((7, 5)).astype("float32")
    w64 = rng.standard_normal((7, 5))
    outs = [x32 @ gc.constant(w32), gc.relu(x64 @ gc.constant(w64))]
    f = gc.compile([x32, x64], outs, backend="c")
    a32, a64 = rng.standard_normal((9, 7)).astype("float32"), rng.standard_normal((9, 7))
    got = f(a32, a64)
    np.testing.assert_allclose(got[0], a32 @ w32, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], np.maximum(a64 @ w64, 0), rtol=1e-12, atol=1e-12)
    assert len(list(cores_dir.glob("*.o"))) == 2


def test_modules_without_a_gemm_do_not_build_the_core(empty_cache):
    _, cores_dir = empty_cache
    x = gc.placeholder((None, 5), name="x")
    f = gc.compile([x], gc.sigmoid(x) * 2, backend="c")
    np.testing.assert_allclose(f(np.zeros((3, 5), "float32")), np.ones((3, 5)))
    assert not list(cores_dir.glob("*.o"))


def test_truncated_core_object_is_rebuilt(empty_cache):
    _, cores_dir = empty_cache
    _train("c", 0.1)
    (core,) = cores_dir.glob("*.o")
    data = core.read_bytes()
    core.write_bytes(data[: len(data) // 3])
    got, _, _ = _train("c", 0.3)  # a new graph: a new module, linked with the core
    assert len(core.read_bytes()) > len(data) // 3
    np.testing.assert_allclose(got, _train("numpy", 0.3)[0], rtol=1e-5, atol=1e-6)


def test_core_object_that_does_not_link_is_rebuilt(empty_cache, tmp_path):
    """An object that passes the file checks (ELF, relocatable, the driver's name present) but
    does not define it: the link fails once, the core is built again, the module links."""
    _, cores_dir = empty_cache
    _train("c", 0.1)
    (core,) = cores_dir.glob("*.o")
    fake = tmp_path / "fake.c"
    fake.write_text('const char gc_names[] = "\\0gc__gemm_run_f32\\0";\n')
    subprocess.run(["gcc", "-fPIC", "-c", str(fake), "-o", str(core)], check=True)
    from graphc.runtime import gemm_core
    gemm_core.check_object(core, 32)  # passes the checks: only the link can tell
    # a new graph (a module path not loaded in this process yet) needs the core
    got, _, _ = _train("c", 0.3)
    np.testing.assert_allclose(got, _train("numpy", 0.3)[0], rtol=1e-5, atol=1e-6)
    assert os.path.getsize(core) > 10000


def test_cache_dir_does_not_move_the_core(tmp_path, monkeypatch):
    """GRAPHC_CACHE_DIR holds graphs' modules; the driver stays in the core directory, so a
    fresh cache directory recompiles graphs, not the driver."""
    from graphc.runtime import cache
    monkeypatch.delenv("GRAPHC_CORE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "a"))
    assert cache.core_dir() == tmp_path / "xdg" / "graphc" / "core"
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(tmp_path / "elsewhere"))
    assert cache.core_dir() == tmp_path / "elsewhere"
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("GRAPHC_CORE_DIR", str(blocked / "core"))  # cannot be created
    assert cache.core_dir() == cache.kernel_cache_dir()


_THREAD_PROBE = """
import os, sys, numpy as np, graphc as gc
gc.set_num_threads(int(sys.argv[1]))
x = gc.placeholder((None, 256), name="x")
f = gc.compile([x], x @ gc.constant(np.ones((256, 256), "float32")), backend="c")
xs = np.ones((256, 256), "float32")
before = len(os.listdir("/proc/self/task"))
assert float(f(xs)[0, 0]) == 256.0
print(len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_core_follows_the_module_thread_count(tmp_path):
    """The core takes its thread count from the module it is linked into (gc_set_threads): a
    process capped at one thread starts no OpenMP worker for a 256^3 GEMM, one with two does."""
    import sys
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="2",
               GRAPHC_CORE_DIR=str(tmp_path / "core"),
               OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="passive",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))
    started = {}
    for n in (1, 2):
        out = subprocess.run([sys.executable, "-c", _THREAD_PROBE, str(n)], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        started[n] = int(out.stdout.split()[-1])
    assert started == {1: 0, 2: 1}


def test_cache_command_lists_and_clears_the_core(empty_cache, capsys):
    from graphc.cli import main
    _, cores_dir = empty_cache
    _train("c", 0.1)
    assert main(["cache", "list"]) == 0
    assert f"1 compiled GEMM driver object(s) in {cores_dir}" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 compiled module(s)" in capsys.readouterr().out
    assert not list(cores_dir.glob("*.o"))
