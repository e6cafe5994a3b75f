"""gc.compile: feeding (positional, keyword), validation (shape, dtype) with nothing updated on
failure, dtype conversion, updates reading old values, outputs, backends, memory_report."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _step():
    x = gc.placeholder((None, 3), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    w = gc.parameter(np.full((3, 2), 0.5, np.float32), name="w")
    loss = gc.cross_entropy(x @ w, y)
    (gw,) = gc.grad(loss, [w])
    f = gc.compile([x, y], loss, updates=[(w, w - 0.1 * gw)])
    return x, y, w, f


def test_positional_and_keyword_feeding():
    x = gc.placeholder((2,), "float64", name="x")
    y = gc.placeholder((2,), "float64", name="y")
    f = gc.compile([x, y], x - y)
    a, b = np.array([1.0, 2.0]), np.array([5.0, 7.0])
    np.testing.assert_array_equal(f(a, b), a - b)
    np.testing.assert_array_equal(f(x=a, y=b), a - b)
    np.testing.assert_array_equal(f(y=b, x=a), a - b)
    np.testing.assert_array_equal(f(a, y=b), a - b)
    with pytest.raises(TypeError):
        f(a, x=a)  # given twice
    with pytest.raises(TypeError):
        f(a, b, a)
    with pytest.raises(TypeError):
        f(a, z=b)
    with pytest.raises(TypeError):
        f(a)  # missing


@pytest.mark.parametrize("bad,words", [
    (np.ones((4, 2), np.float32), ["'x'", "(None, 3)", "(4, 2)"]),
    (np.ones((3,), np.float32), ["'x'", "(None, 3)", "(3,)"]),
    (np.ones((4, 3, 1), np.float32), ["'x'", "(None, 3)", "(4, 3, 1)"]),
])
def test_wrong_shape_raises_and_updates_nothing(bad, words):
    x, y, w, f = _step()
    before = w.value
    with pytest.raises(ValueError) as e:
        f(bad, np.zeros(4, np.int64))
    for word in words:
        assert word in str(e.value), (word, str(e.value))
    np.testing.assert_array_equal(w.value, before)
    # a good call still works and updates
    f(np.ones((4, 3), np.float32), np.zeros(4, np.int64))
    assert not np.array_equal(w.value, before)


def test_wrong_dtype_and_late_argument_error_update_nothing():
    x, y, w, f = _step()
    before = w.value
    with pytest.raises(ValueError) as e:
        f(np.ones((4, 3), np.float32), np.zeros(4, np.float32))  # float into int placeholder
    assert "'y'" in str(e.value)
    with pytest.raises(ValueError) as e:
        f(np.ones((4, 3), np.float32), np.zeros((4, 1), np.int64))
    assert "'y'" in str(e.value) and "(None,)" in str(e.value) and "(4, 1)" in str(e.value)
    with pytest.raises(ValueError):
        f(np.array([["a", "b", "c"]]), np.zeros(1, np.int64))
    np.testing.assert_array_equal(w.value, before)


def test_runtime_error_updates_nothing():
    """Labels out of range fail while running: no parameter changes either."""
    x, y, w, f = _step()
    before = w.value
    with pytest.raises(ValueError):
        f(np.ones((2, 3), np.float32), np.array([0, 7]))
    np.testing.assert_array_equal(w.value, before)


def test_dtype_conversions():
    x = gc.placeholder((2,), "float32", name="x")
    i = gc.placeholder((2,), "int64", name="i")
    b = gc.placeholder((2,), "bool", name="b")
    f = gc.compile([x, i, b], [x * 1, i + 0, gc.where(b, x, 0.0)])
    o1, o2, o3 = f(np.array([0.1, 0.2], np.float64), np.array([1, 2], np.int32),
                   np.array([True, False]))
    assert o1.dtype == np.float32 and o2.dtype == np.int64
    np.testing.assert_array_equal(o1, np.array([0.1, 0.2], np.float32))
    o1, _, _ = f([1, 2], [3, 4], [True, True])  # Python lists and ints into a float placeholder
    np.testing.assert_array_equal(o1, [1, 2])
    with pytest.raises(ValueError) as e:
        f(np.zeros(2), np.array([1.5, 2.0]), np.array([True, False]))
    assert "'i'" in str(e.value)
    with pytest.raises(ValueError):
        f(np.zeros(2), np.array([1, 2]), np.array([1.0, 0.0]))  # float into a bool placeholder


def test_updates_read_old_values():
    a = gc.parameter(np.array([1.0, 2.0]), name="a")
    b = gc.parameter(np.array([3.0, 4.0]), name="b")
    c = gc.parameter(np.array(0.0), name="c")
    x = gc.placeholder((), "float64", name="x")
    f = gc.compile([x], [a + b, a * x], updates=[(a, b), (b, a), (c, gc.sum(a) + x)])
    s, ax = f(10.0)
    np.testing.assert_array_equal(s, [4, 6])
    np.testing.assert_array_equal(ax, [10, 20])  # outputs see the old values
    np.testing.assert_array_equal(a.value, [3, 4])
    np.testing.assert_array_equal(b.value, [1, 2])
    assert c.value == 13.0  # sum of the old a, plus x
    f(0.0)
    np.testing.assert_array_equal(a.value, [1, 2])


def test_update_broadcast_scalar_and_validation():
    p = gc.parameter(np.ones((2, 2)), name="p")
    x = gc.placeholder((), "float64", name="x")
    gc.compile([x], x, updates=[(p, x * 2)])(3.0)
    np.testing.assert_array_equal(p.value, np.full((2, 2), 6.0))
    with pytest.raises(ValueError):
        gc.compile([x], x, updates=[(p, gc.constant(np.ones((3, 2))))])
    with pytest.raises(TypeError):
        gc.compile([x], x, updates=[(x, x)])  # not a parameter
    with pytest.raises(ValueError):
        gc.compile([x], x, updates=[(p, x), (p, x)])  # twice


def test_outputs_single_vs_list():
    x = gc.placeholder((2,), "float64", name="x")
    one = gc.compile([x], x * 2)(np.ones(2))
    assert isinstance(one, np.ndarray)
    lst = gc.compile([x], [x * 2])(np.ones(2))
    assert isinstance(lst, list) and len(lst) == 1
    two = gc.compile([x], [x * 2, gc.sum(x)])(np.ones(2))
    assert len(two) == 2 and two[1] == 2.0
    # outputs that are leaves are copies: mutating them changes nothing
    p = gc.parameter(np.zeros(2), name="p")
    fp = gc.compile([x], [p, x])
    out, xin = fp(np.ones(2))
    out[0] = 5
    assert p.value[0] == 0
    assert gc.compile([], p)().shape == (2,)


def test_missing_placeholder_and_bad_inputs():
    x = gc.placeholder((2,), name="x")
    y = gc.placeholder((2,), name="y")
    with pytest.raises(ValueError) as e:
        gc.compile([x], x + y)
    assert "y" in str(e.value)
    with pytest.raises(TypeError):
        gc.compile([x + 1], x)
    with pytest.raises(ValueError):
        gc.compile([x, gc.placeholder((2,), name="x")], x)  # duplicate names
    with pytest.raises(TypeError):
        gc.compile([x], [np.ones(2)])


def test_unknown_backend():
    x = gc.placeholder((2,), name="x")
    with pytest.raises(ValueError) as e:
        gc.compile([x], x, backend="tpu")
    assert "tpu" in str(e.value)


@pytest.mark.parametrize("name", ["cuda", "opencl"])
def test_gpu_backend_unavailable_or_runs(name):
    x = gc.placeholder((2,), "float32", name="x")
    try:
        f = gc.compile([x], x * 2, backend=name)
    except gc.BackendUnavailable as e:
        assert str(e)  # says why
        assert isinstance(e, RuntimeError)
        return
    np.testing.assert_allclose(f(np.ones(2, np.float32)), [2, 2])


def test_memory_report_and_source():
    x = gc.placeholder((None, 8), "float32", name="x")
    w = gc.parameter(np.ones((8, 4), np.float32))
    f = gc.compile([x], gc.sum(gc.relu(x @ w)))
    rep = f.memory_report()
    assert set(rep) >= {"buffers", "peak"}
    assert isinstance(rep["buffers"], dict) and rep["buffers"]
    assert all(isinstance(v, int) and v >= 0 for v in rep["buffers"].values())
    assert 0 < rep["peak"] <= sum(rep["buffers"].values())
    assert f.source is None
    assert "numpy" in repr(f)


def test_training_step_decreases_loss():
    x, y, w, f = _step()
    xs = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int64)
    losses = [float(f(xs, ys)) for _ in range(30)]
    assert losses[-1] < losses[0]


def test_implicit_updates_only_when_reached():
    """A batch-norm graph's running statistics update only through functions computing it."""
    x = gc.placeholder((None, 2), "float64", name="x")
    rm = gc.parameter(np.zeros(2), trainable=False)
    rv = gc.parameter(np.ones(2), trainable=False)
    y = gc.batch_norm(x, np.ones(2), np.zeros(2), rm, rv, training=True)
    gc.compile([x], gc.sum(x))(np.ones((3, 2)))
    np.testing.assert_array_equal(rm.value, 0)
    gc.compile([x], gc.sum(y))(np.ones((3, 2)))
    np.testing.assert_allclose(rm.value, 0.1)
    # an explicit update of the same parameter wins over the implicit one
    gc.compile([x], y, updates=[(rm, gc.constant(np.full(2, 7.0)))])(np.ones((3, 2)))
    np.testing.assert_array_equal(rm.value, 7.0)


def test_outputs_never_alias_parameters_inputs_or_each_other():
    p = gc.parameter(np.arange(4.0).reshape(2, 2), name="p")
    x = gc.placeholder((2,), "float64", name="x")
    f = gc.compile([x], [gc.reshape(p, (4,)), gc.transpose(p), gc.reshape(x, (2, 1)),
                         gc.exp(x), gc.exp(x), gc.broadcast_like(gc.sum(x), x)])
    xin = np.ones(2)
    outs = f(xin)
    for o in outs:
        assert o.flags.writeable
        o[...] = -7
    np.testing.assert_array_equal(p.value, np.arange(4.0).reshape(2, 2))
    np.testing.assert_array_equal(xin, np.ones(2))
    outs = f(xin)
    outs[3][0] = 5
    assert outs[4][0] == np.e
