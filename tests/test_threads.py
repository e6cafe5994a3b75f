"""Thread control of the compiled CPU code (gc.set_num_threads) and fork safety: a child
process forked after OpenMP ran must not hang in its first parallel region."""
import multiprocessing as mp
import shutil
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import data as gdata
from graphc.runtime import threads

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    gc.set_num_threads(0)


def big_step(seed=0):
    """A step large enough that every GEMM and the wide elementwise loops run in parallel."""
    rng = np.random.RandomState(seed)
    x = gc.placeholder((None, 300), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.randn(300, 256).astype("float32") * 0.05, name="W1")
    b1 = gc.parameter(np.zeros(256, "float32"), name="b1")
    W2 = gc.parameter(rng.randn(256, 10).astype("float32") * 0.05, name="W2")
    params = [W1, b1, W2]
    loss = gc.cross_entropy(gc.relu(x @ W1 + b1) @ W2, y)
    grads = gc.grad(loss, params)
    f = gc.compile([x, y], loss, backend="c",
                   updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)])
    X = rng.rand(400, 300).astype("float32")
    Y = rng.randint(0, 10, 400)
    return f, params, X, Y


def test_results_do_not_depend_on_thread_count():
    runs = []
    for n in (1, 2, 3):
        gc.set_num_threads(n)
        assert gc.get_num_threads() == n
        f, params, X, Y = big_step()
        losses = [float(f(X, Y)) for _ in range(3)]
        runs.append((losses, [p.value.copy() for p in params]))
    for losses, values in runs[1:]:
        np.testing.assert_allclose(losses, runs[0][0], rtol=1e-5)
        for a, b in zip(values, runs[0][1]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_setting_applies_to_modules_loaded_before_and_after():
    f, _, X, Y = big_step()
    f(X, Y)
    before = list(threads._modules)
    gc.set_num_threads(3)
    assert [m.gc_get_threads() for m in before] == [3] * len(before)
    g, _, X2, Y2 = big_step(seed=7)  # another graph: another module, loaded after the call
    g(X2, Y2)
    assert [m.gc_get_threads() for m in threads._modules] == [3] * len(threads._modules)
    gc.set_num_threads(0)  # OpenMP's default again
    assert gc.get_num_threads() == threads._modules[0].gc_get_threads() >= 1


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True, None])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        gc.set_num_threads(bad)


def _child_step(q):
    import warnings
    try:
        f, params, X, Y = _CHILD_STATE
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            gc.set_num_threads(2)  # refused in a forked child: stays single-threaded
        loss = float(f(X, Y))
        rows = gdata._gather_rows_fn()
        q.put((loss, gc.get_num_threads(), [str(x.message) for x in w],
               [p.value.copy() for p in params], rows is not None))
    except BaseException as e:  # report instead of dying silently
        q.put(repr(e))


_CHILD_STATE = None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_forked_child_runs_compiled_steps_without_hanging():
    """libgomp's thread pool does not survive fork: before the fix the child waited forever."""
    global _CHILD_STATE
    f, params, X, Y = big_step()
    f(X, Y)  # OpenMP's pool now exists in this process
    gdata._gather_rows_fn()
    ref_f, ref_params, _, _ = big_step()  # the same step, to compute the expected result here
    ref_f(X, Y)
    expected = float(ref_f(X, Y))
    _CHILD_STATE = (f, params, X, Y)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_child_step, args=(q,))
    proc.start()
    try:  # read before joining: a child exits only once its queued data is consumed
        out = q.get(timeout=120)
    except Exception:
        out = None
    proc.join(30)
    if proc.is_alive():
        proc.kill()
    assert out is not None, "the forked child hung in a parallel region"
    assert not isinstance(out, str), out
    loss, nthreads, warns, values, have_gather = out
    assert nthreads == 1
    assert any("forked" in m for m in warns)
    assert loss == pytest.approx(expected, rel=1e-5)
    for a, b in zip(values, [p.value for p in ref_params]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert have_gather
    # the parent is unaffected
    assert gc.get_num_threads() == threads._default_threads()
