"""Dense(activation="prelu" / "maxout"), gc.prelu's channel axis (as PyTorch), and regressions
found reviewing gc.nn against PyTorch."""
from __future__ import annotations

import inspect
import json
import os

import numpy as np
import pytest

import graphc as gc
import graphc.ops.elementwise as E
from backends import c_available as _c_available
from graphc import nn, optim

B = "numpy"


def _data(n=16, d=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n)


def _np_prelu(z, a):
    return np.where(z > 0, z, a * z)


# -- Dense(activation="prelu") ----------------------------------------------------------------

def test_dense_prelu_parameters():
    m = nn.Sequential([nn.Dense(4, "prelu"), nn.Dense(2)], 3)
    layer = m.layers[0]
    assert [p.name for p in m.all_parameters] == ["dense_0_W", "dense_0_b", "dense_0_alpha",
                                                  "dense_1_W", "dense_1_b"]
    alpha = layer._params["alpha"]
    assert alpha.shape == (4,) and alpha.trainable and alpha in m.parameters
    np.testing.assert_array_equal(alpha.value, np.full(4, 0.25, np.float32))
    assert [p.name for p in m.regularized] == ["dense_0_W", "dense_1_W"]  # no decay on alpha
    # alpha draws nothing from the rng: W of the next layer is as with any other activation
    ref = nn.Sequential([nn.Dense(4, "relu"), nn.Dense(2)], 3)
    np.testing.assert_array_equal(m.get_weights()[3], ref.get_weights()[2])


def test_dense_prelu_forward_uses_alpha():
    m = nn.Sequential([nn.Dense(4, "prelu")], 3)
    W, b, _ = m.get_weights()
    alpha = np.array([0.0, 0.1, 0.5, -1.0], np.float32)
    m.set_weights([W, b + 0.1, alpha])
    X, _ = _data()
    np.testing.assert_allclose(m.predict(X, backend=B), _np_prelu(X @ W + b + 0.1, alpha),
                               rtol=1e-6, atol=1e-6)


def test_dense_prelu_sgd_step_matches_torch():
    torch = pytest.importorskip("torch")
    X, y = _data()
    m = nn.Sequential([nn.Dense(4, "prelu"), nn.Dense(3, "softmax")], 3, seed=1)
    w = m.get_weights()
    w[2] = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    m.set_weights(w)
    m.fit(X, y, optimizer=optim.SGD(0.5), epochs=1, batch_size=16, backend=B, progress=False,
          weight_decay=0.1)
    tp = [torch.tensor(a, requires_grad=True) for a in w]
    h = torch.nn.functional.prelu(torch.tensor(X) @ tp[0] + tp[1], tp[2])
    loss = torch.nn.functional.cross_entropy(h @ tp[3] + tp[4], torch.tensor(y))
    (loss + 0.05 * ((tp[0] ** 2).sum() + (tp[3] ** 2).sum())).backward()
    for got, p in zip(m.get_weights(), tp):
        np.testing.assert_allclose(got, (p - 0.5 * p.grad).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


# -- Dense(activation="maxout") ---------------------------------------------------------------

def test_dense_maxout_is_the_maxout_layer():
    X, _ = _data()
    a = nn.Sequential([nn.Dense(5, "maxout", pieces=3, init="glorot")], 3, seed=4)
    b = nn.Sequential([nn.Maxout(5, 3, init="glorot")], 3, seed=4)
    assert a.output_shape == (5,) and a.get_weights()[0].shape == (3, 15)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    W, bias = a.get_weights()
    want = (X @ W + bias).reshape(len(X), 5, 3).max(axis=2)
    np.testing.assert_allclose(a.predict(X, backend=B), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a.predict(X, backend=B), b.predict(X, backend=B))
    assert nn.Dense(2, "maxout").pieces == 2
    assert nn.Dense(2, "maxout").config()["pieces"] == 2
    assert "pieces" not in nn.Dense(2, "relu").config()  # older saves and readers unchanged


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "relu", "pieces": 2}, "activation='maxout' only"),
    ({"activation": None, "pieces": 3}, "activation='maxout' only"),
    ({"activation": "maxout", "pieces": 0}, "pieces"),
    ({"activation": "maxout", "pieces": 2.0}, "pieces"),
    ({"activation": "maxout", "pieces": True}, "pieces"),
])
def test_dense_pieces_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Dense(3, **kwargs)


def test_activation_names_and_errors():
    with pytest.raises(ValueError) as e:
        nn.Dense(3, activation="bogus")
    for name in ("'prelu'", "'maxout'", "'relu'", "'softmax'"):
        assert name in str(e.value)
    assert nn.Dense(3, activation="PReLU").activation == "prelu"
    # the Activation layer has no parameters of its own: it says where these belong
    for name in ("prelu", "maxout"):
        with pytest.raises(ValueError, match=f"Dense\\(units, activation='{name}'\\)"):
            nn.Activation(name)
    # a function still works
    m = nn.Sequential([nn.Dense(2, lambda t: gc.prelu(t, 0.5))], 3)
    W, b = m.get_weights()
    X, _ = _data()
    np.testing.assert_allclose(m.predict(X, backend=B), _np_prelu(X @ W + b, 0.5), rtol=1e-6,
                               atol=1e-6)


def test_prelu_maxout_save_load_roundtrip(tmp_path):
    X, y = _data()
    m = nn.Sequential([nn.Dense(4, "prelu"), nn.BatchNorm(),
                       nn.Dense(6, "maxout", pieces=3, use_bias=False), nn.Dense(3, "softmax")],
                      3, seed=3)
    m.fit(X, y, optimizer=optim.SGD(0.1), epochs=1, batch_size=8, backend=B, progress=False)
    assert not np.allclose(m.get_weights()[2], 0.25)  # alpha trained
    m.save(tmp_path / "m")
    loaded = nn.load(tmp_path / "m")
    assert repr(loaded) == repr(m)
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(X, backend=B), m.predict(X, backend=B))
    # a Dense maxout saved without "pieces" loads with the default 2 (then its W must fit)
    arch = json.loads((tmp_path / "m" / "model.json").read_text())
    assert arch["layers"][2]["config"]["pieces"] == 3
    del arch["layers"][2]["config"]["pieces"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(arch))
    with pytest.raises(ValueError, match=r"dense_1_W has shape \(4, 18\), the model needs "
                                         r"\(4, 12\)"):
        nn.load(tmp_path / "m")


@pytest.mark.skipif(not _c_available(), reason="no C compiler")
def test_prelu_maxout_c_backend_matches_numpy():
    X, y = _data(32)
    runs = {}
    for backend in ("numpy", "c"):
        m = nn.Sequential([nn.Dense(4, "prelu"), nn.Dense(6, "maxout", pieces=3),
                           nn.Dense(3, "softmax")], 3, seed=5)
        hist = m.fit(X, y, optimizer=optim.SGD(0.2), epochs=2, batch_size=8, backend=backend,
                     progress=False, weight_decay=0.01)
        runs[backend] = (hist["loss"], m.get_weights(), m.predict(X, backend=backend),
                         m.evaluate(X, y, backend=backend))
    (l0, w0, p0, e0), (l1, w1, p1, e1) = runs["numpy"], runs["c"]
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(p1, p0, rtol=1e-4, atol=1e-5)
    assert abs(e1["loss"] - e0["loss"]) < 1e-5 and e1["accuracy"] == e0["accuracy"]


@pytest.mark.skipif(not _c_available(), reason="no C compiler")
def test_prelu_fuses_into_the_dense_gemm_for_inference():
    m = nn.Sequential([nn.Dense(4, "prelu")], 3)
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], m(x), backend="c")
    X, _ = _data()
    np.testing.assert_allclose(f(X), m.predict(X, backend=B), rtol=1e-5, atol=1e-6)
    assert "k0_dense_add_prelu" in f.source and "static void k1" not in f.source


# -- gc.prelu: alpha per channel (axis 1), as torch.nn.functional.prelu -----------------------

def test_prelu_is_the_exported_wrapper():
    assert gc.prelu is E.prelu
    assert list(inspect.signature(gc.prelu).parameters) == ["t", "alpha"]
    assert "axis 1" in gc.prelu.__doc__
    assert gc.prelu.spec is E.ELEMENTWISE["prelu"]


@pytest.mark.parametrize("x_shape,a_shape", [
    ((4, 3), (3,)), ((4, 3), ()), ((4, 3), (1,)),
    ((2, 3, 5), (3,)), ((2, 3, 5), ()), ((2, 3, 5), (1,)),
    ((2, 3, 4, 5), (3,)), ((2, 3, 4, 5), (1,)),
])
def test_prelu_matches_torch(x_shape, a_shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape)
    a = rng.uniform(0.05, 0.9, a_shape)
    w = rng.normal(size=x_shape)
    X = gc.placeholder(x_shape, "float64", name="x")
    A = gc.placeholder(a_shape, "float64", name="a")
    out = gc.prelu(X, A)
    cost = gc.sum(out * gc.constant(w))
    got = gc.compile([X, A], [out] + gc.grad(cost, [X, A]), backend=B)(x, a)
    tx = torch.tensor(x, requires_grad=True)
    ta = torch.tensor(a, requires_grad=True)
    to = torch.nn.functional.prelu(tx, ta.reshape(-1) if ta.ndim == 0 else ta)
    (to * torch.tensor(w)).sum().backward()
    for g, t in zip(got, [to, tx.grad, ta.grad]):
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=1e-10, atol=1e-12)
    gc.check_grad(cost, [X, A], {X: x, A: a})


def test_prelu_channel_alpha_kinds():
    # a parameter, a numpy array or a list of C slopes, and a free batch axis
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    slopes = np.array([0.1, 0.2, 0.3], np.float32)
    want = _np_prelu(x, slopes[:, None])
    X = gc.placeholder((None, 3, 4), name="x")
    outs = [gc.prelu(X, gc.parameter(slopes)), gc.prelu(X, slopes), gc.prelu(X, [0.1, 0.2, 0.3]),
            gc.prelu(t=X, alpha=slopes)]
    for got in gc.compile([X], outs, backend=B)(x):
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("x_shape,a_shape", [((2, 4, 3), (3,)), ((4, 3), (4,)),
                                             ((2, 2, 5, 5), (5,))])
def test_prelu_channel_mismatch_error(x_shape, a_shape):
    fmt = gc.ir.format_shape
    with pytest.raises(gc.ShapeError) as e:
        gc.prelu(gc.placeholder(x_shape), gc.placeholder(a_shape))
    msg = str(e.value)
    assert msg.startswith("prelu") and fmt(x_shape) in msg and fmt(a_shape) in msg


# -- regressions from the review --------------------------------------------------------------

def test_fit_with_a_new_loss_function_does_not_reuse_the_old_step():
    # the training step was cached under id(loss); a freed lambda's id is reused at once
    X, _ = _data()
    Y = np.random.default_rng(2).normal(size=(16, 2)).astype(np.float32)
    m = nn.Sequential([nn.Dense(2)], 3)
    opt = optim.SGD(1e-3)

    def run(scale):
        return m.fit(X, Y, loss=lambda p, t: gc.mean((p - t) ** 2) * scale, optimizer=opt,
                     epochs=1, batch_size=16, backend=B, progress=False)["loss"][0]
    small, big = run(1.0), run(1000.0)
    np.testing.assert_allclose(big, 1000 * small, rtol=1e-2)


def test_failed_model_build_leaves_layers_reusable():
    act, dense = nn.Activation("relu"), nn.Dense(3)
    with pytest.raises(ValueError, match="Flatten"):
        nn.Sequential([act, dense], (2, 3))
    assert act.input_shape is None and act.name is None and dense._params == {}
    m = nn.Sequential([act, nn.Flatten(), dense], (2, 3))
    assert [p.name for p in m.parameters] == ["dense_0_W", "dense_0_b"]
    # a layer of another model is left alone
    other = nn.Sequential([nn.Dense(2)], 3)
    with pytest.raises(ValueError, match="already part of a model"):
        nn.Sequential([nn.Dense(3), other.layers[0]], 3)
    assert other.layers[0].name == "dense_0" and len(other.parameters) == 2


@pytest.mark.parametrize("wd", [float("nan"), float("inf"), -1.0])
def test_weight_decay_must_be_finite_and_non_negative(wd):
    X, y = _data()
    m = nn.Sequential([nn.Dense(3)], 3)
    before = m.get_weights()
    with pytest.raises(ValueError, match="weight_decay"):
        m.fit(X, y, weight_decay=wd, backend=B, progress=False)
    with pytest.raises(ValueError, match="weight_decay"):
        m.graph(weight_decay=wd)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def _regression_data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)


def test_early_stopping_bad_monitor_fails_before_training():
    X, Y = _regression_data()
    m = nn.Sequential([nn.Dense(2)], 3)
    before = m.get_weights()
    for monitor in ("val_accuracy", "los"):  # no accuracy for mse; a typo
        with pytest.raises(ValueError, match=f"'{monitor}' is not among the metrics"):
            m.fit(X, Y, loss="mse", validation_data=(X, Y), epochs=2, backend=B,
                  early_stopping={"monitor": monitor}, progress=False)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_instance_starts_afresh_each_fit():
    X, Y = _regression_data()
    es = nn.EarlyStopping(patience=2)
    a = nn.Sequential([nn.Dense(2)], 3, seed=0)
    a.fit(X, Y, loss="mse", validation_data=(X, Y), epochs=3, optimizer=optim.SGD(0.01),
          early_stopping=es, backend=B, progress=False)
    # another model, on a problem whose losses are far above the first one's best
    b = nn.Sequential([nn.Dense(2)], 3, seed=5)
    hist = b.fit(X, 100 * Y, loss="mse", validation_data=(X, 100 * Y), epochs=4,
                 optimizer=optim.SGD(0.01), early_stopping=es, backend=B, progress=False)
    assert len(hist["loss"]) == 4 and b.best_epoch == 3  # improving: never stopped
    assert not np.array_equal(b.get_weights()[0], a.get_weights()[0])  # a's not restored
    # the default monitor is chosen per fit: no validation data now means "loss"
    hist = b.fit(X, 100 * Y, loss="mse", epochs=1, early_stopping=es, backend=B,
                 progress=False)
    assert es.monitor is None and es.active == "loss" and len(hist["loss"]) == 1
