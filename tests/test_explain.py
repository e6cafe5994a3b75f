"""gc.explain: Algorithm 6.2's walk as a table (the lectures' worked example)."""
from __future__ import annotations

import re

import numpy as np

import graphc as gc


def _example():
    x = gc.placeholder((), "float64", name="x")
    y = gc.placeholder((), "float64", name="y")
    z = gc.placeholder((), "float64", name="z")
    v = x + y
    v.name = "v"
    u = v * z
    u.name = "u"
    f = gc.maximum(u, 0.0)
    f.name = "f"
    return x, y, z, f


def test_explain_worked_example(capsys):
    x, y, z, f = _example()
    out = gc.explain(f, {x: -2.0, y: 3.0, z: 2.0})
    printed = capsys.readouterr().out
    rows = {r["node"]: r for r in out.rows}
    assert {"x", "y", "z", "v", "u", "f"} <= set(rows)
    for name, value in (("x", -2), ("y", 3), ("z", 2), ("v", 1), ("u", 2), ("f", 2)):
        assert float(rows[name]["value"]) == value, name
    for name, g in (("x", 2), ("y", 2), ("z", 1), ("v", 2), ("u", 1), ("f", 1)):
        assert float(rows[name]["grad"]) == g, name
    # forward order: inputs before the nodes that use them
    order = [r["node"] for r in out.rows]
    assert order.index("v") < order.index("u") < order.index("f")
    # the printed text is the returned string, one line per node
    assert printed.strip() == str(out).strip()
    lines = {line.split()[0]: line for line in str(out).splitlines()[2:]}
    for name, value, g in (("v", "1", "2"), ("u", "2", "1"), ("f", "2", "1"),
                           ("x", "-2", "2"), ("y", "3", "2"), ("z", "2", "1")):
        cells = re.split(r"\s{2,}", lines[name].strip())
        assert cells[0] == name
        assert cells[-2] == value and cells[-1] == g, cells
    assert "df/d" in str(out).splitlines()[0]


def test_explain_relu_side_and_silent():
    x, y, z, f = _example()
    out = gc.explain(f, {x: -2.0, y: 1.0, z: 2.0}, show=False)  # (x+y)z = -2: relu is off
    rows = {r["node"]: r for r in out.rows}
    assert float(rows["f"]["value"]) == 0
    for name in "xyz":
        assert float(rows[name]["grad"]) == 0


def test_explain_tensors_show_shapes_and_constant_free_rows(capsys):
    x = gc.placeholder((4, 3), "float32", name="x")
    w = gc.parameter(np.ones((3, 2), np.float32), name="W")
    cost = gc.sum(gc.relu(x @ w))
    cost.name = "cost"
    out = gc.explain(cost, {x: np.ones((4, 3), np.float32)})
    rows = {r["node"]: r for r in out.rows}
    np.testing.assert_allclose(rows["W"]["grad"], np.full((3, 2), 4.0))
    assert float(rows["cost"]["value"]) == 24
    assert "shape (4, 3)" in str(out)
    assert capsys.readouterr().out


def test_explain_changes_no_state_and_keeps_one_line_per_node():
    x = gc.placeholder((4, 2), "float64", name="x")
    rm = gc.parameter(np.zeros(2), trainable=False, name="rm")
    rv = gc.parameter(np.ones(2), trainable=False, name="rv")
    h = gc.batch_norm(x, np.ones(2), np.zeros(2), rm, rv, training=True)
    cost = gc.sum(gc.dropout(h, 0.5, training=True, seed=3))
    xs = np.arange(8.0).reshape(4, 2)
    first = gc.explain(cost, {x: xs}, show=False)
    second = gc.explain(cost, {x: xs}, show=False)
    np.testing.assert_array_equal(rm.value, 0)  # running statistics untouched
    np.testing.assert_array_equal(rv.value, 1)
    assert str(first) == str(second)  # the dropout counter did not advance
    assert len(str(first).splitlines()) == len(first.rows) + 2
