"""Regression tests for deviations from shared/API.md ("Models and training", "Differentiation",
data) found by an API conformance review.  Small data only; one MNIST check skips without the
shared files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data(n=24, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n)


def _model(units=3, activation="softmax", d=5):
    return gc.nn.Sequential([gc.nn.Dense(8, "relu"), gc.nn.Dense(units, activation)],
                            input_dim=d)


# -- fit / evaluate: bad data gives a ValueError naming the problem --------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fit_rejects_nonfinite_X(bad):
    X, y = _data()
    X[3, 2] = bad
    with pytest.raises(ValueError, match=r"X contains NaN or infinite"):
        _model().fit(X, y, epochs=1, backend="numpy", progress=False)


def test_fit_rejects_nan_regression_targets():
    X, _ = _data()
    y = X[:, 0].astype(np.float64)
    y[5] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN"):
        _model(1, None).fit(X, y, loss="mse", epochs=1, backend="numpy", progress=False)


def test_fit_rejects_nan_validation_data():
    X, y = _data()
    Xv = X.copy()
    Xv[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"validation_data: X contains NaN"):
        _model().fit(X, y, validation_data=(Xv, y), epochs=1, backend="numpy",
                     progress=False)


def test_evaluate_rejects_nan_X():
    X, y = _data()
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"evaluate: X contains NaN"):
        _model().evaluate(X, y, backend="numpy")


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_binary_targets_outside_0_1_rejected(loss):
    X, _ = _data()
    model = _model(1, "sigmoid" if loss == "binary_cross_entropy" else None)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        model.fit(X, np.full(len(X), 3.0), loss=loss, epochs=1, backend="numpy",
                  progress=False)


# -- accepted forms ---------------------------------------------------------------------------

def test_cross_entropy_accepts_label_column():
    X, y = _data()
    a, b = _model(), _model()
    ha = a.fit(X, y, epochs=2, batch_size=8, backend="numpy", progress=False)
    hb = b.fit(X, y.reshape(-1, 1), epochs=2, batch_size=8, backend="numpy", progress=False)
    assert ha["loss"] == hb["loss"]
    assert b.evaluate(X, y.reshape(-1, 1), backend="numpy") == a.evaluate(X, y, backend="numpy")


def test_early_stopping_true_uses_defaults():
    X, y = _data()
    model = gc.nn.Sequential([gc.nn.Dense(3)], input_dim=5)
    h = model.fit(X, y, epochs=40, early_stopping=True, optimizer=gc.optim.SGD(lr=5.0),
                  backend="numpy", progress=False)
    assert 1 <= len(h["loss"]) < 40          # stopped early: patience 5 on "loss"
    assert model.best_epoch is not None


def test_predict_single_sample_without_batch_axis():
    X, _ = _data()
    model = _model()
    one = model.predict(X[0], backend="numpy")
    assert one.shape == (3,)
    np.testing.assert_array_equal(one, model.predict(X[:1], backend="numpy")[0])


# -- save / load: a tampered model.json gives a ValueError, never a MemoryError -------------

def _saved(tmp_path):
    path = tmp_path / "m"
    _model().save(path)
    return path, json.loads((path / "model.json").read_text())


def test_load_rejects_huge_units(tmp_path):
    path, arch = _saved(tmp_path)
    arch["layers"][0]["config"]["units"] = 10 ** 12
    (path / "model.json").write_text(json.dumps(arch))
    with pytest.raises(ValueError, match="model.json"):
        gc.nn.load(path)


def test_load_rejects_huge_input_dim(tmp_path):
    path, arch = _saved(tmp_path)
    arch["input_dim"] = [10 ** 12]
    (path / "model.json").write_text(json.dumps(arch))
    with pytest.raises(ValueError, match="model.json"):
        gc.nn.load(path)


def test_load_keeps_init_name(tmp_path):
    path, _ = _saved(tmp_path)
    model = gc.nn.load(path)
    assert model.layers[0].init == "he"
    X, _ = _data()
    np.testing.assert_array_equal(model.predict(X, backend="numpy"),
                                  gc.nn.load(path).predict(X, backend="numpy"))


# -- check_grad: the worst entry over every tensor of wrt -----------------------------------

def test_check_grad_reports_worst_over_all_wrt():
    x = gc.placeholder((3,), name="x")
    z = gc.placeholder((2,), name="z")
    # step has gradient 0 by definition; finite differences across its jump are large, and
    # larger for z (scaled by 100) than for x
    cost = gc.sum(gc.step(x)) + gc.sum(gc.step(z)) * 100.0
    feed = {x: np.array([1.0, 1e-4, 2.0], np.float32), z: np.array([1.0, 2e-4], np.float32)}
    with pytest.raises(AssertionError, match=r"respect to z differs at index \(1,\)"):
        gc.check_grad(cost, [x, z], feed)


# -- data -----------------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="no MNIST files in shared/data")
def test_load_mnist_contract():
    (Xt, yt), (Xs, ys) = gc.data.load_mnist(os.fspath(SHARED))
    assert Xt.shape == (60000, 784) and Xs.shape == (10000, 784)
    assert Xt.dtype == np.float32 and yt.dtype == np.int64 and ys.dtype == np.int64
    assert 0.0 <= Xs.min() and Xs.max() <= 1.0
