"""Softmax cross-entropy forward and backward in one kernel.

The cross-entropy's gradient is one row op, ``softmax_cross_entropy_grad`` (softmax - one_hot)
* g; lowering computes it in the loss's kernel when g does not depend on the loss values, and
the mean's seed (1 broadcast, divided by N) folds into one fill.  Checked against the numpy
backend on C and OpenCL, fused and unfused, first and second order, with the label checks."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import lower as lower_mod
from graphc.lower import lower
from graphc.codegen.gpu import lower_gpu
from backends import C, OPENCL


def mlp_step(n_in=13, hidden=17, classes=5, opt="sgd", reduction="mean", seed=0):
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, n_in), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.standard_normal((n_in, hidden)).astype("float32") * 0.3, name="W1")
    b1 = gc.parameter(np.zeros(hidden, "float32"), name="b1")
    W2 = gc.parameter(rng.standard_normal((hidden, classes)).astype("float32") * 0.3, name="W2")
    b2 = gc.parameter(np.zeros(classes, "float32"), name="b2")
    logits = gc.relu(x @ W1 + b1) @ W2 + b2
    loss = gc.cross_entropy(logits, y, reduction=reduction)
    if reduction == "none":
        loss = gc.sum(loss * gc.constant(np.float32(0.25)))
    params = [W1, b1, W2, b2]
    return x, y, loss, params


def batch(n, n_in=13, classes=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)).astype("float32"), rng.integers(0, classes, n)


def kernel_ops(low):
    return [(k.node.op, [m.node.op for m in k.members]) for k in low.kernels]


def test_loss_and_gradient_share_one_kernel_and_the_seed_is_one_fill():
    x, y, loss, params = mlp_step()
    grads = gc.grad(loss, params)
    f = gc.compile([x, y], loss, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)],
                   backend="numpy")
    for low in (lower(f.program, [(33, 13), (33,)]), lower_gpu(f.program, [(33, 13), (33,)])):
        ops = kernel_ops(low)
        assert ("softmax_cross_entropy", ["softmax_cross_entropy_grad"]) in ops
        assert not any(op in ("softmax", "softmax_cross_entropy_grad") for op, _ in ops)
        # the seed 1/N: one fill, no broadcast or divide kernels
        assert sum(op == "fill_like" for op, _ in ops) == 1
        assert not any(op == "broadcast_like" for op, _ in ops)
        fill = next(k for k in low.kernels if k.node.op == "fill_like")
        assert fill.node.attrs["value"] == pytest.approx(1 / 33) and fill.node.shape == (33,)


def test_fusion_can_be_switched_off(monkeypatch):
    x, y, loss, params = mlp_step()
    f = gc.compile([x, y], gc.grad(loss, params), backend="numpy")
    monkeypatch.setattr(lower_mod, "FUSE_XENT_GRAD", False)
    ops = kernel_ops(lower(f.program, [(8, 13), (8,)]))
    assert ("softmax_cross_entropy_grad", []) in ops and ("softmax_cross_entropy", []) in ops


def _case(backend, *args):
    return pytest.param(backend.values[0], *args, marks=backend.marks)


STEP_CASES = ([_case(C, r, n) for r in ("mean", "sum", "none") for n in (1, 3, 130, 1000)]
              + [_case(OPENCL, r, n) for r, n in (("mean", 130), ("sum", 3), ("none", 17))])


@pytest.mark.parametrize("backend,reduction,n", STEP_CASES)
def test_training_step_matches_numpy(backend, reduction, n):
    """Several SGD steps of an MLP with the fused kernel equal the numpy backend's (1000 rows x
    5 classes takes the C kernel's parallel path)."""
    results = {}
    X, Y = batch(n)
    lr = 0.05 if reduction == "mean" else 0.05 / n  # summed losses: a gradient n times larger
    for be in ("numpy", backend):
        x, y, loss, params = mlp_step(reduction=reduction)
        grads = gc.grad(loss, params)
        f = gc.compile([x, y], [loss] + grads,
                       updates=[(p, p - lr * g) for p, g in zip(params, grads)], backend=be)
        outs = [f(X, Y) for _ in range(3)]
        results[be] = outs + [[p.value.copy() for p in params]]
    for got_step, want_step in zip(results[backend], results["numpy"]):
        for got, want in zip(got_step, want_step):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_loss_dependent_weights_use_the_separate_gradient_kernel(backend):
    """mean(ce^2): the row weights 2 ce / N need the losses first, so the gradient runs in its own
    kernel after them, and the result still equals numpy's."""
    rng = np.random.default_rng(3)
    logits = gc.placeholder((None, 7), name="logits")
    y = gc.placeholder((None,), "int64", name="y")
    ce = gc.cross_entropy(logits, y, reduction="none")
    cost = gc.mean(ce * ce)
    (g,) = gc.grad(cost, [logits])
    L = rng.standard_normal((19, 7)).astype("float32")
    Y = rng.integers(0, 7, 19)
    want = gc.compile([logits, y], [cost, g], backend="numpy")(L, Y)
    f = gc.compile([logits, y], [cost, g], backend=backend)
    for got, ref in zip(f(L, Y), want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    ops = kernel_ops(lower(f.program, [(19, 7), (19,)]))
    assert ("softmax_cross_entropy", []) in ops and ("softmax_cross_entropy_grad", []) in ops


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
def test_float64_and_extreme_logits(backend):
    rng = np.random.default_rng(4)
    logits = gc.placeholder((None, 4), "float64", name="logits")
    y = gc.placeholder((None,), "int64", name="y")
    ce = gc.cross_entropy(logits, y, reduction="none")
    (g,) = gc.grad(gc.mean(ce), [logits])
    L = rng.standard_normal((6, 4)) * 1e4  # a large spread: softmax is one-hot, loss exact
    L[0] = [np.nan, 0, 1, 2]
    Y = np.array([1, 0, 3, 2, 1, 0])
    got_ce, got_g = gc.compile([logits, y], [ce, g], backend=backend)(L, Y)
    m = L.max(axis=1, keepdims=True)
    p = np.exp(L - m) / np.exp(L - m).sum(axis=1, keepdims=True)
    want_ce = (m[:, 0] - L[np.arange(6), Y]) + np.log(np.exp(L - m).sum(axis=1))
    delta = p.copy()
    delta[np.arange(6), Y] -= 1
    assert np.isnan(got_ce[0]) and np.isnan(got_g[0]).all()  # a NaN logit poisons its row only
    np.testing.assert_allclose(got_ce[1:], want_ce[1:], rtol=1e-12)
    np.testing.assert_allclose(got_g[1:], delta[1:] / 6, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_computed_labels_out_of_range_update_nothing(backend):
    """Labels computed in the graph are checked by the fused kernel: the step raises and no
    parameter moves."""
    x, _, _, params = mlp_step()
    raw = gc.placeholder((None,), "int64", name="raw")
    logits = gc.relu(x @ params[0] + params[1]) @ params[2] + params[3]
    loss = gc.cross_entropy(logits, raw + 3)  # computed labels
    grads = gc.grad(loss, params)
    f = gc.compile([x, raw], loss, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)],
                   backend=backend)
    X, Y = batch(9)
    before = [p.value.copy() for p in params]
    with pytest.raises(ValueError, match="labels"):
        f(X, Y)  # Y + 3 reaches 7 >= 5 classes
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.value, b)
    f(X, np.clip(Y, 0, 1))  # in range: trains
    assert not np.array_equal(params[0].value, before[0])


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_fed_labels_out_of_range_name_the_input(backend):
    x, y, loss, params = mlp_step()
    grads = gc.grad(loss, params)
    f = gc.compile([x, y], loss, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)],
                   backend=backend)
    X, Y = batch(9)
    Y[4] = 5
    with pytest.raises(ValueError, match="'y'"):
        f(X, Y)


def test_gradient_op_second_order_against_finite_differences():
    """Hessian-vector products through the loss use the gradient op's own derivative."""
    rng = np.random.default_rng(5)
    logits = gc.placeholder((5, 4), "float64", name="logits")
    w = gc.placeholder((5,), "float64", name="w")
    y = gc.placeholder((5,), "int64", name="y")
    v = gc.constant(rng.standard_normal((5, 4)))
    ce = gc.cross_entropy(logits, y, reduction="none")
    (g,) = gc.grad(gc.sum(ce * w), [logits])  # softmax_cross_entropy_grad(logits, y, w)
    assert g.op == "softmax_cross_entropy_grad"
    hvp_cost = gc.sum(g * v)
    feed = {logits: rng.standard_normal((5, 4)), w: rng.uniform(0.5, 2, 5),
            y: rng.integers(0, 4, 5)}
    gc.check_grad(hvp_cost, [logits, w], feed)


@pytest.mark.parametrize("backend", [C, OPENCL])
def test_second_order_matches_numpy(backend):
    rng = np.random.default_rng(6)
    logits = gc.placeholder((None, 6), name="logits")
    y = gc.placeholder((None,), "int64", name="y")
    loss = gc.cross_entropy(logits, y)
    (g,) = gc.grad(loss, [logits])
    (h,) = gc.grad(gc.sum(g * g), [logits])
    L = rng.standard_normal((11, 6)).astype("float32")
    Y = rng.integers(0, 6, 11)
    want = gc.compile([logits, y], [loss, g, h], backend="numpy")(L, Y)
    got = gc.compile([logits, y], [loss, g, h], backend=backend)(L, Y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_gradient_op_checks_its_inputs():
    logits = gc.placeholder((None, 4), name="logits")
    y = gc.placeholder((None,), "int64", name="y")
    from graphc.ops.registry import make
    with pytest.raises(gc.ShapeError, match="softmax_cross_entropy_grad"):
        make("softmax_cross_entropy_grad", [logits, y, gc.placeholder((None,), "float64")])
    with pytest.raises(gc.ShapeError, match="softmax_cross_entropy_grad"):
        make("softmax_cross_entropy_grad", [logits, y, gc.placeholder((3, 2))])


def test_gradient_graph_round_trips_through_json():
    x, y, loss, params = mlp_step()
    grads = gc.grad(loss, params)
    from graphc import export
    from graphc.ir import toposort
    inputs, outputs = export.from_json(export.to_json([loss] + grads))
    assert any(n.op == "softmax_cross_entropy_grad" for n in toposort(list(outputs)))
    X, Y = batch(7)
    want = gc.compile([x, y], [loss] + grads, backend="numpy")(X, Y)
    by_name = {p.name: p for p in inputs}
    got = gc.compile([by_name["x"], by_name["y"]], list(outputs), backend="c")(X, Y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_uniform_fold_keeps_non_finite_values_out_of_literals():
    """0 / 0 of uniform tensors is NaN: not folded into a fill literal; still computed right."""
    x = gc.placeholder((None, 3), name="x")
    z = gc.zeros_like(x)
    q = gc.div(z, gc.constant(np.float32(0.0))) + x
    X = np.ones((4, 3), "float32")
    got = gc.compile([x], q, backend="c")(X)
    assert np.isnan(got).all()
    r = gc.compile([x], gc.ones_like(x) * gc.constant(np.float32(3.0)) + x, backend="c")(X)
    np.testing.assert_array_equal(r, np.full((4, 3), 4.0, "float32"))
