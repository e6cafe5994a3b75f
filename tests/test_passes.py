"""Passes: the interpreter gives the same results before and after each pass of
graphc.passes.PIPELINE (individually and as a whole) on many graphs; cse merges duplicates;
fold_constants folds constant subgraphs; the rewrite engine maps effects."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import passes
from graphc.ir import collect_effects, toposort
from graphc.rewrite import rewrite
from graphc.runtime.interp import Schedule, evaluate
from op_cases import CASES, placeholders_for, sample_inputs


def _interp(roots, feeds):
    values = evaluate(Schedule(list(roots)), {p.id: v for p, v in feeds.items()})
    return [values[r.id] for r in roots]


def _case_graph(case):
    arrays = sample_inputs(case, case.shapes[-1], "float64", seed=3)
    phs = placeholders_for(arrays)
    out = case.build(*phs)
    roots = [out]
    idx = case.grad_inputs()
    if idx:
        w = np.random.default_rng(4).standard_normal(out.shape)
        cost = gc.sum(out * gc.constant(w, dtype=out.dtype))
        roots += gc.grad(cost, [phs[i] for i in idx])
    return roots, dict(zip(phs, arrays))


def _mlp_step():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 4), "float64", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    w1 = gc.parameter(rng.standard_normal((4, 8)), name="W1")
    b1 = gc.parameter(np.zeros(8), name="b1")
    w2 = gc.parameter(rng.standard_normal((8, 3)), name="W2")
    b2 = gc.parameter(np.zeros(3), name="b2")
    h = gc.dropout(gc.relu(x @ w1 + b1), 0.2, training=True, seed=5)
    logits = h @ w2 + b2
    loss = gc.cross_entropy(logits, y) + 1e-3 * gc.l2_penalty([w1, w2])
    params = [w1, b1, w2, b2]
    grads = gc.grad(loss, params)
    updates = [(p, p - 0.1 * g) for p, g in zip(params, grads)]
    roots = [loss, gc.softmax(logits)] + [v for _, v in updates]
    return roots, {x: rng.standard_normal((5, 4)), y: np.array([0, 1, 2, 1, 0])}


def _bn_step():
    rng = np.random.default_rng(1)
    x = gc.placeholder((None, 3), "float64", name="x")
    g = gc.parameter(np.ones(3), name="gamma")
    b = gc.parameter(np.zeros(3), name="beta")
    rm = gc.parameter(np.zeros(3), trainable=False)
    rv = gc.parameter(np.ones(3), trainable=False)
    out = gc.batch_norm(x, g, b, rm, rv, training=True)
    loss = gc.mean(gc.square(out - 1.0))
    return [loss] + gc.grad(loss, [g, b, x]), {x: rng.standard_normal((6, 3))}


def _layout_graph():
    rng = np.random.default_rng(2)
    x = gc.placeholder((2, 3, 4), "float64", name="x")
    t = gc.transpose(gc.transpose(x, (1, 0, 2)), (2, 0, 1))
    r = gc.reshape(gc.reshape(x, (6, 4)), (4, 6))
    c = gc.constant(np.arange(4.0)) * gc.constant(2.0, "float64") + 1.0
    s = gc.exp(gc.constant(np.ones((3, 3)), "float64")) @ gc.constant(np.eye(3), "float64")
    y = gc.sum(t) + gc.sum(r * 2) + gc.sum(x * c) + gc.sum(s) + gc.sum(gc.exp(x) * gc.exp(x))
    return [y] + [gc.grad(y, x)], {x: rng.standard_normal((2, 3, 4))}


GRAPHS = {c.id: (lambda c=c: _case_graph(c)) for c in CASES}
GRAPHS.update({"mlp_step": _mlp_step, "batch_norm_step": _bn_step, "layout": _layout_graph})


def _all_roots(roots):
    """Roots plus the implicit updates (effects) they reach, as compile sees them."""
    return list(roots) + [v for _, v in collect_effects(toposort(roots))]


@pytest.mark.parametrize("pipeline", [[p] for p in passes.PIPELINE] + [passes.PIPELINE],
                         ids=[n for n, _ in passes.PIPELINE] + ["whole_pipeline"])
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_pass_preserves_values(graph, pipeline):
    roots, feeds = GRAPHS[graph]()
    roots = _all_roots(roots)
    before = _interp(roots, feeds)
    after_roots = passes.run_pipeline(roots, pipeline)
    assert len(after_roots) == len(roots)
    for r, a in zip(roots, after_roots):
        assert a.shape == r.shape and a.dtype == r.dtype, (r, a)
    after = _interp(after_roots, feeds)
    for b, a in zip(before, after):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)


def test_pipeline_shrinks_the_training_graph():
    roots, _ = _mlp_step()
    roots = _all_roots(roots)
    n0 = len(toposort(roots))
    n1 = len(toposort(passes.run_pipeline(roots)))
    assert n1 < n0


def test_cse_merges_duplicates():
    x = gc.placeholder((3,), "float64", name="x")
    a = gc.exp(x) * 2.0
    b = gc.exp(x) * 2.0
    assert a is not b
    (m_a, m_b, m_s) = passes.cse([a, b, a + b])
    assert m_a is m_b
    ops = [n for n in toposort([m_s]) if n.op == "ew"]
    assert len(ops) == 3  # exp, *2, +
    # different attributes are not merged
    s0, s1 = passes.cse([gc.sum(x * x, axis=0), gc.mean(x * x, axis=0)])
    assert s0 is not s1 and s0.inputs[0] is s1.inputs[0]
    # duplicate constants are merged too
    c1, c2 = passes.cse([gc.constant(np.ones(3)) + x, gc.constant(np.ones(3)) + x])
    assert c1 is c2


def test_cse_keeps_distinct_parameters_and_placeholders():
    p = gc.parameter(np.ones(2))
    q = gc.parameter(np.ones(2))
    a, b = passes.cse([p * 2.0, q * 2.0])
    assert a is not b


def test_fold_constants():
    x = gc.placeholder((3,), "float32", name="x")
    c = gc.exp(gc.constant(np.arange(3.0), "float32")) * 2.0 + gc.constant(1.0)
    (out,) = passes.fold_constants([x + c])
    nodes = toposort([out])
    consts = [n for n in nodes if n.op == "constant"]
    assert [n.op for n in nodes if not n.is_leaf] == ["ew"]
    assert len(consts) == 1
    np.testing.assert_allclose(consts[0].value, np.exp(np.arange(3.0)) * 2 + 1, rtol=1e-6)
    # a fully constant graph becomes one constant
    (k,) = passes.fold_constants([gc.sum(gc.constant(np.ones((4, 4))) @ gc.constant(np.eye(4)))])
    assert k.op == "constant" and float(k.value) == 16.0
    # random ops and nodes with effects are not folded
    d = gc.dropout(gc.constant(np.ones((4,))), 0.5, training=True, seed=1)
    (d2,) = passes.fold_constants([d])
    assert any(n.op == "random_uniform" for n in toposort([d2]))


def test_simplify_rules():
    x = gc.placeholder((2, 3, 4), "float64", name="x")
    (t,) = passes.simplify([gc.transpose(gc.transpose(x, (1, 0, 2)), (1, 0, 2))])
    assert t is x
    (r,) = passes.simplify([gc.reshape(gc.reshape(x, (6, 4)), (4, 6))])
    assert r.op == "reshape" and r.inputs[0] is x
    (s,) = passes.simplify([gc.stop_gradient(x)])
    assert s is x


def test_debug_env_names_passes(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DEBUG", "2")
    x = gc.placeholder((2,), name="x")
    gc.compile([x], gc.exp(x) + 1)
    err = capsys.readouterr().err
    for name, _ in passes.PIPELINE:
        assert f"pass {name}" in err
    assert "exp" in err


def test_rewrite_maps_effects_to_the_new_graph():
    """A rebuilt node's implicit updates (batch norm statistics) refer to the rewritten graph,
    and an update whose target stopped being a parameter is dropped (check_grad relies on
    this)."""
    x = gc.placeholder((4, 2), "float64", name="x")
    rm = gc.parameter(np.zeros(2), trainable=False)
    rv = gc.parameter(np.ones(2), trainable=False)
    y = gc.batch_norm(x, np.ones(2), np.zeros(2), rm, rv, training=True)
    x2 = gc.placeholder((4, 2), "float64", name="x2")
    m = rewrite([y], [], leaf_map={x.id: x2})
    effects = collect_effects(toposort([m[y.id]]))
    assert [p for p, _ in effects] == [rm, rv]
    leaves = {n.id for _, v in effects for n in toposort([v]) if n.op == "placeholder"}
    assert leaves == {x2.id}
    rm_ph = gc.placeholder((2,), "float64", name="rm")
    m = rewrite([y], [], leaf_map={rm.id: rm_ph})
    assert [p for p, _ in collect_effects(toposort([m[y.id]]))] == [rv]


def test_check_grad_leaves_running_stats_alone():
    x = gc.placeholder((5, 2), "float64", name="x")
    rm = gc.parameter(np.zeros(2), trainable=False)
    rv = gc.parameter(np.ones(2), trainable=False)
    y = gc.batch_norm(x, np.ones(2), np.zeros(2), rm, rv, training=True)
    gc.check_grad(gc.sum(y * gc.constant(np.arange(10.0).reshape(5, 2))), x,
                  {x: np.random.default_rng(0).standard_normal((5, 2))})
    np.testing.assert_array_equal(rm.value, 0)
    np.testing.assert_array_equal(rv.value, 1)
