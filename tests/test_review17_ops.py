"""Regressions for op gaps against PyTorch found by the seventeenth review (session 9): batch
norm on one sample, the softmax family on 0-d tensors, and an edge-case sweep of the ops with
attributes (axes, keepdims, reshape, transpose, matmul, NaN handling) on numpy and C."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import graphc as gc

from backends import C, OPENCL

BACKENDS = ["numpy", C]


# -- 1. batch norm in training on a batch of one sample ------------------------------------------

def _bn(shape, training=True):
    x = gc.placeholder(shape)
    rm = gc.parameter(np.zeros(3, np.float32), trainable=False)
    rv = gc.parameter(np.ones(3, np.float32), trainable=False)
    y = gc.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv, training)
    return x, rv, y


def test_batch_norm_training_one_sample_static_raises_like_torch():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.functional.batch_norm(torch.ones(1, 3), torch.zeros(3), torch.ones(3),
                                       training=True)
    with pytest.raises(gc.ShapeError, match=r"batch_norm: .*more than 1 value per channel.*"
                                             r"\(1, 3\)"):
        _bn((1, 3))
    _bn((1, 3), training=False)  # inference on one sample is fine (torch too)


@pytest.mark.parametrize("backend", BACKENDS + [OPENCL])
def test_batch_norm_training_one_sample_fed_raises_and_updates_nothing(backend, monkeypatch):
    # (the check is the host's, before any launch: PoCL's optimizer is not under test, and
    # without it this test's cold-cache build costs ~1.4 s of CPU instead of ~1.8 s)
    monkeypatch.setenv("GRAPHC_OPENCL_OPTIONS", "-cl-opt-disable")
    # the batch comes from the fed input: every backend raises at the call (the running
    # variance used to decay toward 0: the unbiased variance of one sample taken as 0)
    x, rv, y = _bn((None, 3))
    f = gc.compile([x], y, backend=backend)
    f(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    before = rv.value
    with pytest.raises(ValueError, match=r"batch_norm: .*more than 1 value per channel.*"
                                         r"\(1, 3\)"):
        f(np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(rv.value, before)
    assert f(np.ones((2, 3), np.float32)).shape == (2, 3)  # other batches still run


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_time_shape_error_says_where_the_node_was_built(backend):
    """A compiled backend re-infers the graph for the fed shapes; its ShapeError said 'built at'
    the line calling f (where the rebuild ran), not the line that built the failing node."""
    x, _, y = _bn((None, 3)); built = _line_of("y = gc.batch_norm")
    f = gc.compile([x], y, backend=backend)
    with pytest.raises(ValueError, match="more than 1 value per channel") as e:
        f(np.ones((1, 3), np.float32))
    assert f"test_review17_ops.py:{built}" in str(e.value)
    assert str(e.value).count("built at") == 1


def _line_of(text):
    import inspect
    lines = inspect.getsource(_bn).splitlines()
    start = inspect.getsourcelines(_bn)[1]
    return next(start + i for i, ln in enumerate(lines) if text in ln)


def test_batch_norm_one_sample_check_survives_json_round_trip():
    x, _, y = _bn((None, 3))
    ins, outs = gc.export.from_json(gc.export.to_json([y], [x]))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        gc.compile(ins, outs)(np.ones((1, 3), np.float32))


def test_fit_batch_norm_last_batch_of_one_is_skipped_with_warning():
    """Choice: PyTorch raises on a training batch of one (DataLoader users set drop_last=True);
    Keras trains on it.  fit leaves such a last batch out of each epoch with a warning (rather
    than failing at the end of the first epoch), and refuses up front data that only makes
    batches of one.  Models without batch norm train on every batch as before."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4)).astype(np.float32)
    y = rng.integers(0, 3, 9)
    m = gc.nn.Sequential([gc.nn.Dense(5), gc.nn.BatchNorm(), gc.nn.Dense(3)], input_dim=4)
    with pytest.warns(UserWarning, match="last batch of 1 sample"):
        h = m.fit(X, y, epochs=2, batch_size=4, backend="numpy", progress=False)
    assert np.all(np.isfinite(h["loss"]))
    with pytest.raises(ValueError, match="BatchNorm needs more than 1 sample per batch"):
        m.fit(X, y, epochs=1, batch_size=1, backend="numpy", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.fit(X[:8], y[:8], epochs=1, batch_size=4, backend="numpy", progress=False)
        plain = gc.nn.Sequential([gc.nn.Dense(3)], input_dim=4)
        plain.fit(X, y, epochs=1, batch_size=4, backend="numpy", progress=False)


# -- 2. softmax, log_softmax, logsumexp of a 0-d tensor ---------------------------------------

_ROWWISE = [("softmax", gc.softmax, torch.softmax), ("log_softmax", gc.log_softmax,
                                                     torch.log_softmax),
            ("logsumexp", gc.logsumexp, torch.logsumexp)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,gfn,tfn", _ROWWISE, ids=[r[0] for r in _ROWWISE])
@pytest.mark.parametrize("axis", [0, -1])
def test_rowwise_ops_of_0d_tensor_match_torch(backend, op, gfn, tfn, axis):
    """PyTorch reads dim 0 / -1 of a 0-d tensor as its one element (softmax 1, log_softmax 0,
    logsumexp x; NaN at +-inf for the first two, and a NaN gradient at +-inf for logsumexp);
    graphc raised ShapeError 'axis out of range for shape ()'."""
    s = gc.placeholder(())
    out = gfn(s, axis)
    assert out.shape == ()
    f = gc.compile([s], [out, gc.grad(out, s)], backend=backend)
    for v in (2.0, -3.5, np.inf, -np.inf, np.nan):
        tx = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        ty = tfn(tx, axis)
        tg, = torch.autograd.grad(ty, tx)
        y, g = f(np.float32(v))
        assert y.shape == () and g.shape == ()
        np.testing.assert_allclose([float(y), float(g)], [ty.item(), tg.item()], rtol=1e-6,
                                   err_msg=f"{op} at {v}")


def test_rowwise_ops_of_0d_tensor_default_axis_and_bad_axis():
    s = gc.placeholder(())
    assert float(gc.compile([s], gc.softmax(s))(np.float32(5.0))) == 1.0
    assert float(gc.compile([s], gc.log_softmax(s))(np.float32(5.0))) == 0.0
    for fn in (gc.softmax, gc.log_softmax, gc.logsumexp):
        with pytest.raises(gc.ShapeError, match=r"axis 1 out of range for shape \(\)"):
            fn(s, 1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        torch.softmax(torch.tensor(1.0), 1)


# -- 3. logsumexp over no axes ------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_logsumexp_over_no_axes_matches_torch_where_torch_defines_it(backend):
    """axis=() reduces nothing (API.md: axis follows numpy; scipy.special.logsumexp agrees):
    the value is x and the gradient exp(x - lse(x)), NaN at +-inf.  PyTorch defines dim=() only
    for 0-d tensors (on others it raises 'output with shape [] doesn't match the broadcast
    shape') and there gives the same NaN gradient at +-inf, as over any one-element axis: no
    change, this pins it."""
    with pytest.raises(RuntimeError):
        torch.logsumexp(torch.ones(2, 2), dim=())
    vals = np.array([2.0, np.inf, -np.inf], np.float32)
    x = gc.placeholder((3,))
    out = gc.logsumexp(x, axis=())
    f = gc.compile([x], [out, gc.grad(gc.sum(out), x)], backend=backend)
    y, g = f(vals)
    for v, yv, gv in zip(vals, y, g):
        tx = torch.tensor(float(v), dtype=torch.float64, requires_grad=True)
        ty = torch.logsumexp(tx, dim=())
        tg, = torch.autograd.grad(ty, tx)
        np.testing.assert_allclose([yv, gv], [ty.item(), tg.item()])


# -- axis out of range: ShapeError (API.md) and IndexError (PyTorch) ---------------------------

_AXIS_CASES = [
    ("sum", lambda x: gc.sum(x, 2), lambda t: torch.sum(t, 2)),
    ("mean", lambda x: gc.mean(x, -3), lambda t: torch.mean(t, -3)),
    ("max", lambda x: gc.max(x, (0, 5)), lambda t: torch.amax(t, (0, 5))),
    ("logsumexp", lambda x: gc.logsumexp(x, 2), lambda t: torch.logsumexp(t, 2)),
    ("softmax", lambda x: gc.softmax(x, 2), lambda t: torch.softmax(t, 2)),
    ("log_softmax", lambda x: gc.log_softmax(x, -3), lambda t: torch.log_softmax(t, -3)),
    ("transpose", lambda x: gc.transpose(x, (0, 2)), lambda t: t.permute(0, 2)),
    ("squeeze", lambda x: gc.squeeze(x, 3), lambda t: torch.squeeze(t, 3)),
    ("expand_dims", lambda x: gc.expand_dims(x, 4), lambda t: torch.unsqueeze(t, 4)),
]


@pytest.mark.parametrize("op,gfn,tfn", _AXIS_CASES, ids=[c[0] for c in _AXIS_CASES])
def test_axis_out_of_range_is_index_error_as_in_torch(op, gfn, tfn):
    """PyTorch raises IndexError ('Dimension out of range'); graphc raised a ShapeError that
    was not one, so `except IndexError` code ported from torch missed it.  Now AxisError is both
    (numpy's AxisError is a ValueError and an IndexError too)."""
    with pytest.raises(IndexError):
        tfn(torch.ones(2, 3))
    with pytest.raises(IndexError, match=rf"{op}: ax[ie]s .*out of range for shape \(2, 3\)") as e:
        gfn(gc.placeholder((2, 3)))
    assert isinstance(e.value, gc.ShapeError)


# -- axes and shapes that are not ints ---------------------------------------------------------

def test_bool_or_float_axis_is_type_error_as_in_numpy_and_torch():
    """sum(x, True) reduced axis 1 (bool is an int subclass) and sum(x, 1.0) failed with
    "'float' object is not iterable"; numpy and PyTorch raise TypeError for both."""
    x = gc.placeholder((2, 3))
    for axis in (True, 1.0, (0, 1.5), np.bool_(False)):
        with pytest.raises(TypeError):
            np.sum(np.ones((2, 3)), axis=axis)
        with pytest.raises(TypeError, match=r"sum: axis must be None, an int or a tuple of ints"):
            gc.sum(x, axis)
    with pytest.raises(TypeError, match="logsumexp: axis must be"):
        gc.logsumexp(x, True)
    assert gc.sum(x, np.int64(1)).shape == (2,) and gc.max(x, (np.int32(0),)).shape == (3,)


def test_reshape_float_or_bool_dims_are_type_error():
    """reshape(x, (2.7, 3)) truncated 2.7 to 2 (int()) and True to 1; numpy and PyTorch raise
    TypeError."""
    x = gc.placeholder((2, 3))
    for shape in ((3.0, 2), (2.7, 3), (True, 6), True):
        with pytest.raises(TypeError):
            np.ones((2, 3)).reshape(shape)
        with pytest.raises(TypeError, match="reshape: shape must be an int or a tuple of ints"):
            gc.reshape(x, shape)
    assert gc.reshape(x, (np.int64(3), None)).shape == (3, 2)
    assert gc.reshape(x, np.array([3, 2])).shape == (3, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_axis_none_or_tuple_is_type_error(backend):
    """softmax(x, None) normalized over axis 0 (the first of 'all axes'), and softmax(x, (1, 0))
    over axis 0 too; PyTorch raises TypeError: softmax takes one int dim."""
    with pytest.raises(TypeError):
        torch.softmax(torch.ones(2, 3), None)
    x = gc.placeholder((2, 3))
    for fn in (gc.softmax, gc.log_softmax):
        for axis in (None, (1, 0), 1.0, True):
            with pytest.raises(TypeError, match=rf"{fn.__name__}: axis must be an int"):
                fn(x, axis)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = gc.compile([x], gc.softmax(x, np.int64(1)), backend=backend)(xv)
    np.testing.assert_allclose(got, torch.softmax(torch.tensor(xv), 1).numpy(), rtol=1e-6)


# -- 4. denormals: kept, as PyTorch on CPU keeps them -------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_denormal_results_are_not_flushed(backend):
    """PyTorch's CPU default keeps denormals (torch.set_flush_denormal(False)); so do numpy and
    graphc's C flags (no -ffast-math, no FTZ/DAZ).  log(sigmoid(-100)) in float32 is still not
    torch's: torch.sigmoid computes 1 / (1 + exp(100)) = 1 / inf = 0 (log: -inf) for x < -88.7,
    while graphc returns the correctly rounded denormal 3.8e-44 (log: -99.98, torch float64:
    -100); a difference of formula, not of flushing, and graphc's is the closer one."""
    vals = np.array([1e-39, -1e-40, 3e-38, 1e-45], np.float32)
    x = gc.placeholder((4,))
    outs = [x * 0.5, x / 3.0, gc.exp(x * 0.0 - 100.0), gc.sigmoid(x * 0.0 - 100.0),
            gc.sigmoid(x * 0.0 - 88.0)]
    got = gc.compile([x], outs, backend=backend)(vals)
    t = torch.tensor(vals)
    want = [t * 0.5, t / 3.0, torch.exp(t * 0 - 100), torch.sigmoid(t.double() * 0 - 100).float(),
            torch.sigmoid(t * 0 - 88)]
    for g, w in zip(got, want):
        w = w.numpy()
        assert np.any((w != 0) & (np.abs(w) < np.finfo(np.float32).tiny))  # denormals
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=0)


def test_activation_parameters_must_be_numbers():
    """elu(t, "1") ran with alpha 1 (float("1")); a tensor alpha failed with "float() argument
    must be a string or a real number, not 'Tensor'", naming no op.  PyTorch: TypeError
    "argument 'alpha' must be Number, not str"."""
    with pytest.raises(TypeError, match="must be Number"):
        torch.nn.functional.elu(torch.ones(2), "1")
    x = gc.placeholder((3,))
    with pytest.raises(TypeError, match=r"elu: alpha must be a real number, got '1'"):
        gc.elu(x, "1")
    with pytest.raises(TypeError, match=r"leaky_relu: alpha must be a real number, got <Tensor"):
        gc.leaky_relu(x, gc.constant(0.1))
    xv = np.array([-1.0, 0.0, 2.0], np.float32)
    for alpha in (np.float32(0.5), np.array(0.5), 0.5):
        np.testing.assert_allclose(gc.compile([x], gc.elu(x, alpha))(xv),
                                   torch.nn.functional.elu(torch.tensor(xv), 0.5).numpy(),
                                   rtol=1e-6)
