"""Build-time errors: gc.ShapeError (a ValueError) naming the op, the shapes and the user's
file:line; run-time shape errors naming the node."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc as gc

HERE = os.path.basename(__file__)


def _ph(shape, dtype="float32", name=None):
    return gc.placeholder(shape, dtype, name=name)


def _check(exc, op, *shapes):
    msg = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert op in msg, msg
    for s in shapes:
        assert s in msg, (s, msg)
    assert f"{HERE}:" in msg, msg  # where the user built it
    return msg


def test_shape_error_is_value_error():
    assert issubclass(gc.ShapeError, ValueError)


@pytest.mark.parametrize("build,op,shapes", [
    (lambda: _ph((3, 4)) + _ph((5,)), "add", ["(3, 4)", "(5,)"]),
    (lambda: _ph((3, 4)) * _ph((2, 4, 3)), "mul", ["(3, 4)", "(2, 4, 3)"]),
    (lambda: gc.sub(_ph((None, 3)), _ph((None, 4))), "sub", ["(None, 3)", "(None, 4)"]),
    (lambda: _ph((3, 4)) @ _ph((5, 6)), "matmul", ["(3, 4)", "(5, 6)"]),
    (lambda: gc.matmul(_ph((3,)), _ph((4,))), "matmul", ["(3,)", "(4,)"]),
    (lambda: gc.matmul(_ph((2, 3, 4)), _ph((5, 4, 2))), "matmul", ["(2, 3, 4)", "(5, 4, 2)"]),
    (lambda: gc.matmul(_ph((3, 4)), _ph(()) ), "matmul", ["(3, 4)", "()"]),
    (lambda: gc.reshape(_ph((2, 3)), (4,)), "reshape", ["(2, 3)", "(4,)"]),
    (lambda: gc.reshape(_ph((2, 3)), (4, -1)), "reshape", ["(2, 3)", "(4, -1)"]),
    (lambda: gc.where(_ph((3,), "bool"), _ph((4,)), _ph((3,))), "where", ["(3,)", "(4,)"]),
    (lambda: gc.maximum(_ph((2, 3)), _ph((3, 2))), "maximum", ["(2, 3)", "(3, 2)"]),
    (lambda: gc.prelu(_ph((4, 3)), _ph((4,))), "prelu", ["(4, 3)", "(4,)"]),
    (lambda: gc.mse(_ph((4, 3)), _ph((4, 2))), "mse", ["(4, 3)", "(4, 2)"]),
    (lambda: gc.binary_cross_entropy(_ph((4,)), _ph((4, 1))), "binary_cross_entropy",
     ["(4,)", "(4, 1)"]),
    (lambda: gc.cross_entropy(_ph((4, 3)), _ph((5,), "int64")), "cross_entropy",
     ["(4, 3)", "(5,)"]),
    (lambda: gc.cross_entropy(_ph((4,)), _ph((4,), "int64")), "cross_entropy", ["(4,)"]),
    (lambda: gc.maxout(_ph((4, 5)), 2), "maxout", ["(4, 5)"]),
    (lambda: gc.transpose(_ph((2, 3)), (0, 0)), "transpose", ["(2, 3)"]),
    (lambda: gc.transpose(_ph((2, 3)), (0, 3)), "transpose", ["(2, 3)", "(0, 3)"]),
    (lambda: gc.sum(_ph((2, 3)), axis=2), "sum", ["(2, 3)"]),
    (lambda: gc.softmax(_ph((2, 3)), axis=-3), "softmax", ["(2, 3)"]),
    (lambda: gc.batch_norm(_ph((4, 3)), np.ones(3), np.zeros(3), gc.parameter(np.zeros(2)),
                           gc.parameter(np.ones(3)), training=True), "batch_norm",
     ["(2,)", "(4, 3)"]),
])
def test_build_time_shape_errors(build, op, shapes):
    with pytest.raises(gc.ShapeError) as e:
        build()
    _check(e, op, *shapes)


def test_cross_entropy_label_dtype():
    with pytest.raises(gc.ShapeError) as e:
        gc.cross_entropy(_ph((4, 3)), _ph((4,), "float32"))
    _check(e, "cross_entropy", "float32")
    with pytest.raises(gc.ShapeError):
        gc.cross_entropy(_ph((4, 3), "int64"), _ph((4,), "int64"))  # integer logits


def test_grad_shape_errors_are_located():
    x = _ph((3,))
    with pytest.raises(gc.ShapeError) as e:
        gc.grad(x * 2, x)
    _check(e, "grad", "(3,)")


def test_matmul_dtype_mismatch():
    with pytest.raises(gc.ShapeError) as e:
        gc.matmul(_ph((2, 3), "int64"), _ph((3, 2), "float32"))
    _check(e, "matmul", "int64")


def test_runtime_shape_error_names_the_node():
    """Free dims can only be checked when fed: the error names the op and where it was built."""
    x, y = _ph((None, 3), name="x"), _ph((None, 3), name="y")
    f = gc.compile([x, y], x + y)
    with pytest.raises(ValueError) as e:
        f(np.ones((2, 3)), np.ones((4, 3)))
    msg = str(e.value)
    assert "add" in msg and HERE in msg and "(2, 3)" in msg and "(4, 3)" in msg


def test_other_build_errors():
    x = _ph((2, 3))
    with pytest.raises(ValueError):
        gc.gelu(x, approximate="fast")
    with pytest.raises(ValueError):
        gc.mse(x, x, reduction="avg")
    with pytest.raises(ValueError):
        gc.maxout(x, 0)
    with pytest.raises(ValueError):
        gc.placeholder((2, -1))
    with pytest.raises(TypeError):
        bool(x > 0)
    with pytest.raises(TypeError):
        gc.relu(x, x)
    with pytest.raises(TypeError):
        gc.batch_norm(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), training=True)
    with pytest.raises(AttributeError):
        (x + 1).value
    with pytest.raises(TypeError):
        gc.constant(x)
