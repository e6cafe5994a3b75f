"""Every differentiable op's gradient against float64 central finite differences: through
``gc.check_grad`` (the interpreter) and against finite differences of the independent numpy
formula of tests/op_cases.py; non-differentiable ops give zero gradients."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from op_cases import (CASES, case_params, check_case_grad, check_grad_vs_ref, placeholders_for,
                      sample_inputs)


@pytest.mark.parametrize("case,shapes", case_params(differentiable=True))
def test_check_grad(case, shapes):
    check_case_grad(case, shapes)


@pytest.mark.parametrize("case,shapes", case_params(differentiable=True))
def test_grad_vs_reference(case, shapes, backend):
    check_grad_vs_ref(case, shapes, backend=backend)


@pytest.mark.parametrize("case,shapes", case_params(lambda c: not c.differentiable))
def test_non_differentiable_gives_zero(case, shapes):
    arrays = sample_inputs(case, shapes)
    phs = placeholders_for(arrays)
    out = case.build(*phs)
    cost = gc.sum(gc.cast(out, "float64") * 3.0)
    grads = gc.grad(cost, [p for p in phs if p.dtype.startswith("float")])
    vals = gc.compile(phs, grads)(*arrays)
    for g, p in zip(vals, phs):
        assert g.shape == p.shape
        np.testing.assert_array_equal(g, 0)


def test_grad_through_kink_conventions():
    """Derivative 0 at the kink for relu/step, ties of maximum split evenly (as PyTorch)."""
    x = gc.placeholder((3,), "float64", name="x")
    y = gc.placeholder((3,), "float64", name="y")
    gr = gc.grad(gc.sum(gc.relu(x)), x)
    gm = gc.grad(gc.sum(gc.maximum(x, y)), [x, y])
    gmax = gc.grad(gc.max(x), x)
    f = gc.compile([x, y], [gr] + gm + [gmax])
    r, mx, my, mm = f(np.array([0.0, 1.0, -1.0]), np.array([0.0, 2.0, -2.0]))
    np.testing.assert_array_equal(r, [0, 1, 0])
    np.testing.assert_array_equal(mx, [0.5, 0, 1])
    np.testing.assert_array_equal(my, [0.5, 1, 0])
    np.testing.assert_array_equal(f(np.array([2.0, 2.0, 1.0]), np.zeros(3))[3], [0.5, 0.5, 0])
    assert mm.shape == (3,)


def test_every_elementwise_registry_entry_has_a_case():
    """The generated table of elementwise ops (the registry) is fully covered."""
    from graphc.ops.elementwise import ELEMENTWISE
    ids = {c.id.split("(")[0] for c in CASES}
    missing = [n for n in ELEMENTWISE if n not in ids]
    assert not missing, missing


@pytest.mark.parametrize("name", sorted(__import__("graphc.ops.elementwise", fromlist=["x"]
                                                   ).ELEMENTWISE))
def test_elementwise_registry_generated(name):
    """Generated from the registry: each named elementwise op on inputs from its declared
    domain, with each declared parameter set, against finite differences (float64)."""
    from graphc.ops.elementwise import ELEMENTWISE
    spec = ELEMENTWISE[name]
    rng = np.random.default_rng(7)
    for params in spec.params:
        arrays = []
        for i, d in enumerate(spec.domain):
            shape = [(3, 1), (1, 2), (3, 2)][i]  # broadcast against each other
            if d == "bool":
                arrays.append(rng.random(shape) < 0.5)
            elif d == "positive":
                arrays.append(rng.uniform(0.5, 2.0, shape))
            elif d == "unit":
                arrays.append(rng.uniform(0.05, 0.95, shape))
            elif d == "nonzero":
                arrays.append(rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape))
            else:
                # interleaved grids: away from 0 and +-1 and, between arguments, from ties
                arrays.append(rng.integers(-4, 4, shape) * 0.5 + 0.1 + 0.25 * (i % 2))
        phs = placeholders_for(arrays)
        # the constructor the registry made for this spec (gc.binary_cross_entropy is the
        # reducing loss built on top of the elementwise one)
        import graphc.ops.elementwise as E
        fn = next(getattr(E, a) for a in dir(E) if getattr(getattr(E, a), "spec", None) is spec)
        out = fn(*phs, **params)
        out = gc.cast(out, "float64") if out.dtype == "bool" else out
        cost = gc.sum(out * gc.constant(rng.standard_normal(out.shape)))
        wrt = [p for p in phs if p.dtype == "float64"]
        if spec.differentiable:
            gc.check_grad(cost, wrt, dict(zip(phs, arrays)))
        else:
            for g in gc.compile(phs, gc.grad(cost, wrt))(*arrays):
                np.testing.assert_array_equal(g, 0)


def _same_batch(case, shapes):
    """Shapes whose first dimension can be a free batch dimension: every input has the same
    rank and first size (a free dim that broadcasts against a different runtime size, e.g.
    (None, 1) fed 3 rows against (None, 4) fed 1, is not supported by un-broadcasting)."""
    ranks = {len(s) for s in shapes}
    firsts = {s[0] for s in shapes if s}
    return len(ranks) == 1 and len(firsts) == 1 and 0 not in ranks and \
        not case.id.startswith("maxout(pieces=2,axis=0)")


@pytest.mark.parametrize("case,shapes", [p for p in case_params(differentiable=True)
                                         if _same_batch(*p.values)])
def test_grad_with_free_batch_dimension(case, shapes, backend):
    check_grad_vs_ref(case, shapes, backend=backend, free_batch=True)
