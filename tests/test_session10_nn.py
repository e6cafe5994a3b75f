"""Session 10, nn: batch norm with a fed training flag on a batch of one sample (an error only
in the calls that train, on every backend), and predict / evaluate padding the last partial
batch to a few bucket sizes (a bounded number of compiled modules per model and backend)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

from backends import C, OPENCL

BACKENDS = ["numpy", C]


# -- 1. batch norm, training flag a boolean placeholder, batch of one -------------------------

def _bn_fed_flag(flag_of=lambda p: p):
    x = gc.placeholder((None, 3), name="x")
    rm = gc.parameter(np.zeros(3, np.float32), trainable=False)
    rv = gc.parameter(np.ones(3, np.float32), trainable=False)
    train = gc.placeholder((), "bool", name="training")
    y = gc.batch_norm(x, np.full(3, 2.0, np.float32), np.ones(3, np.float32), rm, rv,
                      flag_of(train))
    return x, train, rm, rv, y


@pytest.mark.parametrize("backend", BACKENDS + [OPENCL])
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
