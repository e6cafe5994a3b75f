"""Regressions for bugs found by adversarial testing: integer reductions, feed range checks,
reshape targets, name types, parameter assignment, update shapes, thread safety, export limits
and hostile expressions in graph files."""
from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL, c_available


# -- 1. integer reductions are exact in every backend ------------------------------------------

INT_CASES = [
    ("int64", [16777217, 3]),
    ("int32", [16777217, 3]),
    ("uint32", [4000000001, 1]),
    ("uint64", [2**63 + 5, 7]),
    ("int64", [-(2**62) - 1, -(2**62) - 3]),
    ("int8", [-100, -128]),
    ("uint8", [200, 100]),
    ("bool", [True, False]),
]


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
@pytest.mark.parametrize("dtype,data", INT_CASES)
def test_integer_reductions_are_exact(backend, dtype, data):
    a = gc.placeholder((2,), dtype=dtype)
    b = gc.placeholder((3, 2), dtype=dtype)
    outs = [gc.max(a), gc.sum(a), gc.mean(a), gc.max(b, axis=0), gc.sum(b, axis=1)]
    x = np.array(data, dtype=dtype)
    y = np.stack([x, x[::-1], x]).astype(dtype)
    got = gc.compile([a, b], outs, backend=backend)(x, y)
    want = gc.compile([a, b], outs)(x, y)  # the numpy reference
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    assert got[0] == x.max() and got[1] == x.sum(dtype=got[1].dtype)


@pytest.mark.parametrize("backend", [C, OPENCL])
@pytest.mark.parametrize("dtype", ["int32", "uint32", "int64", "uint8"])
def test_long_integer_reductions_are_exact(backend, dtype):
    # long enough for the GPU's split (two-pass) reduction
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=(3, 20000), dtype=dtype, endpoint=True)
    x[1, 12345] = info.max
    a = gc.placeholder(x.shape, dtype=dtype)
    outs = [gc.max(a), gc.sum(a), gc.max(a, axis=1), gc.sum(a, axis=1)]
    got = gc.compile([a], outs, backend=backend)(x)
    want = gc.compile([a], outs)(x)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", [C])  # (the GPU backends compute these in float32)
def test_integer_logsumexp_and_mean_follow_numpy(backend):
    a = gc.placeholder((2,), dtype="int64")
    x = np.array([16777217, 16777216], dtype=np.int64)
    got = gc.compile([a], [gc.mean(a), gc.logsumexp(a)], backend=backend)(x)
    want = gc.compile([a], [gc.mean(a), gc.logsumexp(a)])(x)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-7)


@pytest.mark.parametrize("dtype", ["uint32", "int8"])
def test_integer_logsumexp_reference_does_not_wrap(dtype):
    # the numpy reference converts integers first: x - max(x) wrapped for unsigned types, and
    # int8 computed in float16
    a = gc.placeholder((2,), dtype=dtype)
    x = np.array([4000000001, 1] if dtype == "uint32" else [100, 90], dtype=dtype)
    want = np.log(np.sum(np.exp(x.astype(np.float64) - x.max()))) + float(x.max())
    got = gc.compile([a], gc.logsumexp(a))(x)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    if c_available():
        np.testing.assert_allclose(gc.compile([a], gc.logsumexp(a), backend="c")(x), want, rtol=1e-6)


# -- 2. integer feeds must fit the placeholder ------------------------------------------------

@pytest.mark.parametrize("dtype,value", [("int32", [0, 2**40]), ("int8", [300]),
                                          ("uint8", [-1]), ("uint32", [-5, 3]),
                                          ("int64", np.array([2**63], dtype=np.uint64)),
                                          ("uint64", np.array([-1], dtype=np.int64))])
def test_integer_feed_out_of_range_raises(dtype, value):
    a = gc.placeholder((None,), dtype=dtype, name="labels")
    f = gc.compile([a], gc.sum(a))
    with pytest.raises(ValueError, match="labels"):
        f(np.asarray(value) if not isinstance(value, np.ndarray) else value)


def test_integer_feed_in_range_and_float_narrowing_still_work():
    a = gc.placeholder((None,), dtype="int32", name="labels")
    assert gc.compile([a], gc.sum(a))(np.array([1, 2**31 - 1 - 1], dtype=np.int64)) == 2**31 - 1
    u = gc.placeholder((None,), dtype="uint8", name="u")
    assert gc.compile([u], gc.max(u))(np.array([0, 255], dtype=np.int64)) == 255
    assert gc.compile([u], gc.max(u))(np.array([True, False])) == 1
    x = gc.placeholder((2,), name="x")
    out = gc.compile([x], x * 1)(np.array([1e-300, 1.5]))  # float64 -> float32 stays allowed
    assert out.dtype == np.float32


# -- 3. reshape targets ------------------------------------------------------------------------

@pytest.mark.parametrize("target", [(-2, -5), (-1, -5), (5, -2), (-1, -1), (3, 3)])
def test_reshape_rejects_bad_targets(target):
    c = gc.placeholder((2, 5))  # (-2, -5) multiplies to the right size
    with pytest.raises(gc.ShapeError, match="reshape"):
        gc.reshape(c, target)


def test_reshape_bad_negative_with_free_dim():
    c = gc.placeholder((None, 3))
    with pytest.raises(gc.ShapeError, match="reshape.*-2"):
        gc.reshape(c, (-2, 3))
    assert gc.reshape(c, (-1, 3)).shape == (None, 3)


# -- 4. names must be strings ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [123, b"x", object(), 1.5])
def test_non_string_names_rejected(bad):
    with pytest.raises((TypeError, ValueError), match="name"):
        gc.placeholder((2,), name=bad)
    with pytest.raises((TypeError, ValueError), match="name"):
        gc.parameter(np.zeros(2, np.float32), name=bad)
    with pytest.raises((TypeError, ValueError), match="name"):
        gc.constant(1.0, name=bad)
    t = gc.placeholder((2,))
    with pytest.raises((TypeError, ValueError), match="name"):
        t.name = bad


# -- 5. parameter assignment -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.array([1 + 2j, 3j]), np.array([None, 1.0], dtype=object),
                                  np.array(["a", "b"]), np.array([1.0, 2.0], dtype=object),
                                  [1 + 1j, 2]])
def test_parameter_value_rejects_non_numeric(bad):
    p = gc.parameter(np.zeros(2, np.float32), name="weights")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning either
        with pytest.raises(ValueError, match="weights"):
            p.value = bad
    np.testing.assert_array_equal(p.value, np.zeros(2, np.float32))


def test_parameter_value_still_accepts_ordinary_arrays():
    p = gc.parameter(np.zeros((2, 2), np.float32), name="w")
    base = np.arange(8, dtype=np.float64).reshape(2, 4)
    ro = np.ones((2, 2))
    ro.setflags(write=False)
    for v in ([[1, 2], [3, 4]], np.ones((2, 2)), np.ones((2, 2), dtype=np.int64),
              np.asfortranarray(np.ones((2, 2))), base[:, ::2], ro, np.ones((2, 2), bool)):
        p.value = v
        assert p.value.dtype == np.float32
    q = gc.parameter(np.zeros(2, np.int64), name="counts", trainable=False)
    q.value = [3, 4]
    assert q.value.tolist() == [3, 4]


def test_parameter_value_rejects_float_into_int_range():
    q = gc.parameter(np.zeros(2, np.int32), name="counts", trainable=False)
    with pytest.raises(ValueError, match="counts"):
        q.value = np.array([0, 2**40])


# -- 6. update values with free dimensions ----------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
def test_update_with_free_dim_mismatch_raises(backend):
    a = gc.placeholder((None, 3), name="a")
    p = gc.parameter(np.zeros((3, 3), np.float32), name="P")
    g = gc.compile([a], gc.sum(a), updates=[(p, a * 2)], backend=backend)
    with pytest.raises(ValueError, match=r"P.*\(5, 3\).*\(3, 3\)|P.*\(3, 3\).*\(5, 3\)"):
        g(np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(p.value, np.zeros((3, 3), np.float32))  # nothing updated
    g(np.ones((3, 3), np.float32))  # the matching size works
    np.testing.assert_array_equal(p.value, np.full((3, 3), 2, np.float32))
    g(np.ones((1, 3), np.float32))  # and a broadcastable one
    with pytest.raises(ValueError, match="P"):
        g(np.ones((5, 3), np.float32))  # still raises on the second try (cached check)


def test_update_static_mismatch_raises_at_compile_time():
    a = gc.placeholder((4, 3), name="a")
    p = gc.parameter(np.zeros((3, 3), np.float32), name="P")
    with pytest.raises(ValueError, match=r"P.*\(4, 3\).*\(3, 3\)"):
        gc.compile([a], gc.sum(a), updates=[(p, a * 2)])


# -- 7. and 8. thread safety ------------------------------------------------------------------

def test_numpy_backend_updates_are_serialized():
    P = gc.parameter(np.zeros((), np.float32), name="P", trainable=False)
    x = gc.placeholder((), name="x")
    f = gc.compile([x], x + P, updates=[(P, P + 1)])
    # stretch each call so that unserialized calls would overlap
    import graphc.runtime.interp as interp
    orig = interp.evaluate

    def slow(*a, **k):
        out = orig(*a, **k)
        import time
        time.sleep(0.0005)
        return out
    interp.evaluate = slow
    try:
        threads = [threading.Thread(target=lambda: [f(np.float32(0)) for _ in range(40)])
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        interp.evaluate = orig
    assert P.value == 320


def test_specialize_builds_once_per_shape_under_threads():
    from graphc.runtime.specializing import ShapeSpecializingExecutable
    import time

    class Slow(ShapeSpecializingExecutable):
        built = 0

        def _specialize(self, shapes):
            Slow.built += 1
            time.sleep(0.05)
            return object()

    x = gc.placeholder((None,))
    exe = Slow(gc.compile([x], x * 2).program)
    results = []
    threads = [threading.Thread(target=lambda: results.append(exe.specialize([(4,)])))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Slow.built == 1
    assert len({id(r) for r in results}) == 1


# -- 9. export of long names ------------------------------------------------------------------

def test_to_json_rejects_names_the_reader_would_reject():
    x = gc.placeholder((2,), name="x" * 5000)
    with pytest.raises(ValueError, match="name"):
        gc.export.to_json(x * 2)
    y = gc.placeholder((2,), name="y" * 4096)  # the longest allowed name round-trips
    inputs, outputs = gc.export.from_json(gc.export.to_json(y * 2, inputs=[y]))
    assert inputs[0].name == "y" * 4096


def test_to_dot_truncates_long_labels():
    a = gc.placeholder((2,), name="a" * 10000)
    b = gc.placeholder((2,), name="a" * 10000)
    dot = gc.export.to_dot(a + b)
    assert max(len(line) for line in dot.splitlines()) < 1000
    assert f"n{a.id} " in dot and f"n{b.id} " in dot
    assert dot.count("->") == 2


# -- 10. hostile expressions in graph files ---------------------------------------------------

def _ew_doc(expr_tree):
    x = gc.placeholder((2,), name="x")
    doc = json.loads(gc.export.to_json(gc.exp(x), inputs=[x]))
    for node in doc["nodes"]:
        if node["op"] == "ew":
            node["attrs"]["expr"] = {"$expr": expr_tree}
    return json.dumps(doc)


A0 = {"sym": 0}


@pytest.mark.parametrize("tree", [
    {"f": "Piecewise", "args": [{"f": "ExprCondPair", "args": [
        A0, {"f": "StrictGreaterThan", "args": [A0, {"int": "0"}]}]}]},
    {"f": "Add", "args": [A0, {"f": "Pow", "args": [{"int": "10"}, {"int": "99999999"}]}]},
    {"f": "Add", "args": [A0, {"f": "tan", "args": [{"const": "zoo"}]}]},
])
def test_from_json_rejects_unsafe_expressions(tree):
    with pytest.raises(ValueError):  # rejected when loading, not a hang or KeyError later
        gc.export.from_json(_ew_doc(tree))


def test_logsumexp_over_an_empty_axis_is_minus_inf():
    # numpy's max has no identity: the reference raised on a batch of 0 where C gave -inf
    z = gc.placeholder((None, 3), name="z")
    for backend in ("numpy", C.values[0]) if c_available() else ("numpy",):
        out = gc.compile([z], gc.logsumexp(z, axis=0), backend=backend)(np.zeros((0, 3), np.float32))
        np.testing.assert_array_equal(out, np.full(3, -np.inf, np.float32))
