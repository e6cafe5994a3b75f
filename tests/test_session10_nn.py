"""Session 10, nn: batch norm with a fed training flag on a batch of one sample (an error only
in the calls that train, on every backend), and predict / evaluate padding the last partial
batch to a few bucket sizes (a bounded number of compiled modules per model and backend)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

from backends import C, CUDA, OPENCL

BACKENDS = ["numpy", C]
# the C variants compile 5-6 modules: 6-9 s with a cold compile cache
C_SLOW = pytest.param("c", marks=list(C.marks) + [pytest.mark.slow])


# -- 1. batch norm, training flag a boolean placeholder, batch of one -------------------------

def _bn_fed_flag(flag_of=lambda p: p):
    x = gc.placeholder((None, 3), name="x")
    rm = gc.parameter(np.zeros(3, np.float32), trainable=False)
    rv = gc.parameter(np.ones(3, np.float32), trainable=False)
    train = gc.placeholder((), "bool", name="training")
    y = gc.batch_norm(x, np.full(3, 2.0, np.float32), np.ones(3, np.float32), rm, rv,
                      flag_of(train))
    return x, train, rm, rv, y


@pytest.mark.parametrize("backend", BACKENDS + [OPENCL, CUDA])
def test_batch_norm_fed_flag_one_sample_training_raises_and_updates_nothing(backend):
    x, train, rm, rv, y = _bn_fed_flag()
    f = gc.compile([x, train], y, backend=backend)
    one = np.array([[1.0, 2.0, 3.0]], np.float32)
    with pytest.raises(ValueError, match=r"batch_norm: .*more than 1 value per channel.*"
                                         r"\(1, 3\)"):
        f(one, True)
    np.testing.assert_array_equal(rm.value, np.zeros(3, np.float32))
    np.testing.assert_array_equal(rv.value, np.ones(3, np.float32))
    # evaluation on one sample is fine (torch too): the running statistics, untouched
    np.testing.assert_allclose(f(one, False), 2.0 * one / np.sqrt(1.0 + 1e-5) + 1.0, rtol=1e-6)
    np.testing.assert_array_equal(rv.value, np.ones(3, np.float32))
    # a training batch of two still trains and updates the statistics
    two = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    np.testing.assert_allclose(f(two, True), [[-1.0, 1.0, 3.0], [3.0, 1.0, -1.0]], atol=1e-4)
    np.testing.assert_allclose(rm.value, [0.2, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(rv.value, [0.9 + 0.2, 0.9, 0.9 + 0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        f(one, True)  # the same shape again (a cached specialization) is still checked
    np.testing.assert_allclose(rv.value, [1.1, 0.9, 1.1], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_computed_flag_one_sample(backend):
    # the flag is any boolean scalar: here computed from a fed float
    x = gc.placeholder((None, 3), name="x")
    rv = gc.parameter(np.ones(3, np.float32), trainable=False)
    rm = gc.parameter(np.zeros(3, np.float32), trainable=False)
    mode = gc.placeholder((), name="mode")
    y = gc.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv,
                      gc.greater(mode, 0.5))
    f = gc.compile([x, mode], y, backend=backend)
    one = np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        f(one, np.float32(1.0))
    assert f(one, np.float32(0.0)).shape == (1, 3)
    np.testing.assert_array_equal(rv.value, np.ones(3, np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_fed_flag_static_batch_of_one(backend):
    # a static batch of one with a fed flag: not an error at build time (evaluation is fine)
    x = gc.placeholder((1, 3), name="x")
    rm = gc.parameter(np.zeros(3, np.float32), trainable=False)
    rv = gc.parameter(np.ones(3, np.float32), trainable=False)
    train = gc.placeholder((), "bool", name="training")
    y = gc.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv, train)
    f = gc.compile([x, train], y, backend=backend)
    assert f(np.ones((1, 3), np.float32), False).shape == (1, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        f(np.ones((1, 3), np.float32), True)
    np.testing.assert_array_equal(rv.value, np.ones(3, np.float32))


def test_batch_norm_fed_flag_check_survives_json_round_trip():
    x, train, rm, rv, y = _bn_fed_flag()
    ins, outs = gc.export.from_json(gc.export.to_json([y], [x, train]))
    for backend in ("numpy", "c"):
        f = gc.compile(ins, outs, backend=backend)
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            f(np.ones((1, 3), np.float32), True)
        assert f(np.ones((1, 3), np.float32), False)[0].shape == (1, 3)


def test_size_of_second_input_must_be_a_boolean_flag():
    x = gc.placeholder((None, 3))
    with pytest.raises(gc.ShapeError, match="size_of: a second input"):
        gc.ops.registry.make("size_of", [x, gc.placeholder((2,), "bool")], axes=(0,),
                             dtype="float32", batch_stats=True)


# -- 2. predict / evaluate: a bounded number of compiled modules ------------------------------

def _bn_model():
    """A model whose evaluation would be wrong if padding coupled samples: batch norm (with
    fitted running statistics), dropout, softmax output."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32) * 3 + 1
    y = (X[:, 0] + X[:, 1] > 2).astype(np.int64) + (X[:, 2] > 1)
    m = gc.nn.Sequential([gc.nn.Dense(8, "relu"), gc.nn.BatchNorm(), gc.nn.Dropout(0.3),
                          gc.nn.Dense(3, "softmax")], input_dim=6, seed=1)
    m.fit(X, y, epochs=2, batch_size=32, backend="numpy", progress=False)
    assert not np.allclose(m.layers[1].all_parameters[-1].value, 1.0)  # running var fitted
    return m, X, y


def _record_shapes(f):
    """The distinct input shapes a compiled function runs at (one module each on C)."""
    seen = set()
    run = f._exe.run

    def recording(feeds):
        seen.add(tuple(a.shape for a in feeds))
        return run(feeds)
    f._exe.run = recording
    return seen


def test_bucket_sizes():
    from graphc.nn.model import bucket_size, exact_chunks
    assert [bucket_size(n, 48) for n in (1, 2, 3, 5, 16, 17, 33, 47, 48)] == \
        [1, 2, 4, 8, 16, 32, 48, 48, 48]
    assert list(exact_chunks(0, 8)) == []
    assert list(exact_chunks(21, 8)) == [(0, 8), (8, 16), (16, 20), (20, 21)]
    assert list(exact_chunks(7, 48)) == [(0, 4), (4, 6), (6, 7)]


@pytest.mark.parametrize("backend", ["numpy", C_SLOW])
def test_predict_compiles_a_bounded_number_of_modules(backend):
    m, X, _ = _bn_model()
    batch_size = 24
    reference = gc.compile([x := gc.placeholder((None, 6), name="x")], m(x), backend="numpy")
    m.predict(X[:1], batch_size=batch_size, backend=backend)  # builds the compiled function
    f = m._predict_cache[backend]
    shapes = _record_shapes(f)
    for n in range(1, 301):
        got = m.predict(X[:n], batch_size=batch_size, backend=backend)
        assert got.shape == (n, 3)
        np.testing.assert_allclose(got, reference(X[:n]), rtol=1e-5, atol=1e-6)
    # buckets 1, 2, 4, 8, 16 and 24: at most log2(24) + 2 = 6.6
    assert {s[0][0] for s in shapes} == {1, 2, 4, 8, 16, 24}
    if backend == "c":
        assert len(f._exe._specs) == 6  # the modules actually built
    # one sample alone (no batch axis) still gives its output alone
    np.testing.assert_allclose(m.predict(X[5], backend=backend), reference(X[5:6])[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", C_SLOW])
def test_evaluate_is_exact_over_real_samples_with_bounded_modules(backend):
    m, X, y = _bn_model()
    x = gc.placeholder((None, 6), name="x")
    t = gc.placeholder((None,), "int64", name="t")
    out, logits = m.forward(x, training=False)
    ref = gc.compile([x, t], [gc.cross_entropy(logits, t), out], backend="numpy")
    m.evaluate(X[:1], y[:1], batch_size=12, backend=backend)
    f = next(iter(m._eval_cache.values()))[3][backend]
    shapes = _record_shapes(f)
    for n in list(range(1, 70)) + [100, 257, 299, 300]:
        got = m.evaluate(X[:n], y[:n], batch_size=12, backend=backend)
        loss, probs = ref(X[:n], y[:n])  # the whole set in one unpadded call
        np.testing.assert_allclose(got["loss"], loss, rtol=1e-5)
        assert got["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y[:n]), abs=1e-9)
    assert {s[0][0] for s in shapes} == {1, 2, 4, 8, 12}
    if backend == "c":
        assert len(f._exe._specs) == 5


def test_evaluate_custom_loss_is_a_mean_over_real_samples():
    # a user loss is any scalar: no per-sample values to slice, so no sample is ever padded
    m, X, _ = _bn_model()
    target = np.linspace(0, 1, 3 * 300, dtype=np.float32).reshape(300, 3)

    def loss(pred, t):
        return gc.mean(gc.square(gc.sub(pred, t)))
    for n in (1, 7, 45):
        got = m.evaluate(X[:n], target[:n], loss=loss, batch_size=32, backend="numpy")
        want = np.mean((m.predict(X[:n], backend="numpy") - target[:n]) ** 2)
        assert got["loss"] == pytest.approx(float(want), rel=1e-5)
