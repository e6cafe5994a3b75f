"""Regressions for deviations from /work/shared/API.md found by the fourteenth review (an
outside conformance suite's reading of the contract, sentence by sentence)."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc


def _data(n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, X[:, :1] * 2.0 + 1.0


# -- 1. fit's parameters in the order API.md lists them ------------------------------------------

def test_fit_signature_matches_api_order():
    """API.md: fit(X, y, loss, optimizer, epochs, batch_size, backend, validation_data,
    early_stopping, weight_decay, seed, progress); extra parameters come after those, so a
    call passing them positionally means what the contract says."""
    listed = ["X", "y", "loss", "optimizer", "epochs", "batch_size", "backend",
              "validation_data", "early_stopping", "weight_decay", "seed", "progress"]
    for fn in (gc.nn.Sequential.fit, gc.nn.training.fit):
        names = [p for p in inspect.signature(fn).parameters if p not in ("self", "model")]
        assert names[:len(listed)] == listed, names


def test_fit_positional_early_stopping_is_early_stopping():
    X, y = _data()
    m = gc.nn.Sequential([gc.nn.Dense(1)], input_dim=4)
    # early_stopping=1 given positionally (9th argument after X, y)
    h = m.fit(X, y, "mse", gc.optim.SGD(lr=50.0), 20, 40, "numpy", (X, y), 1, 0.0, 0, False)
    assert len(h["loss"]) < 20 and m.best_epoch is not None


# -- 2. evaluate(X, y) computes the loss the model was trained with ------------------------------

def test_evaluate_defaults_to_the_fit_loss():
    X, y = _data()
    m = gc.nn.Sequential([gc.nn.Dense(1)], input_dim=4)
    m.fit(X, y, loss="mse", epochs=2, batch_size=8, backend="numpy", progress=False)
    r = m.evaluate(X, y, backend="numpy")
    pred = m.predict(X, backend="numpy")
    assert set(r) == {"loss"}
    np.testing.assert_allclose(r["loss"], np.mean((pred - y) ** 2), rtol=1e-5)
    assert r == m.evaluate(X, y, loss="mse", backend="numpy")


def test_evaluate_unfitted_model_is_cross_entropy():
    X, _ = _data()
    labels = (X[:, 0] > 0).astype(np.int64)
    m = gc.nn.Sequential([gc.nn.Dense(2)], input_dim=4)
    r = m.evaluate(X, labels, backend="numpy")
    assert set(r) == {"loss", "accuracy"}


# -- 3. check_grad's feed, like explain's and compile's, may name the placeholders ----------------

def test_check_grad_feed_by_placeholder_name():
    x = gc.placeholder((3,), name="x")
    W = gc.parameter(np.arange(6, dtype=np.float32).reshape(2, 3) / 5, name="W")
    cost = gc.sum(gc.tanh(W @ x))
    gc.check_grad(cost, [W, x], {"x": np.array([0.1, -0.2, 0.3])})
    # and a wrong gradient is still caught when fed by name
    bad = gc.sum(gc.where(gc.greater(x, 0.5), x * 10.0, x))
    with pytest.raises(AssertionError, match="differs at index"):
        gc.check_grad(bad, x, {"x": np.array([0.5, 0.2, 0.3])})


# -- 4. `python -m graphc` is the command line, as `graphc` and `python -m graphc.cli` -------------

@pytest.mark.parametrize("sub", ["train", "bench", "viz", "cache"])
def test_python_m_graphc_subcommand_help(sub):
    root = os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    r = subprocess.run([sys.executable, "-m", "graphc", sub, "--help"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: graphc {sub}")


# -- 5. a Dense layer's output_shape is its activation function's ---------------------------------

def test_dense_output_shape_follows_function_activation():
    X = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    m = gc.nn.Sequential([gc.nn.Dense(4, activation=lambda t: gc.maxout(t, 2)),
                          gc.nn.Dense(3, activation=gc.tanh)], input_dim=3)
    assert m.layers[0].output_shape == (2,) and m.output_shape == (3,)
    assert m.layers[1].parameters[0].shape == (2, 3)
    single = gc.nn.Sequential([gc.nn.Dense(4, activation=lambda t: gc.maxout(t, 2))], input_dim=3)
    assert single.output_shape == (2,)
    assert single.predict(X, backend="numpy").shape == (6, 2)
    assert single.predict(X[:0], backend="numpy").shape == (0, 2)


# -- 6. load_mnist(path=None) finds ../shared/data from the project root, graphc installed --------

def test_default_data_dirs_include_the_working_directorys_shared_data(monkeypatch, tmp_path):
    from graphc import data
    project, shared = tmp_path / "project", tmp_path / "shared" / "data"
    (shared / "mnist").mkdir(parents=True)
    project.mkdir()
    for name in data._FILES.values():
        (shared / "mnist" / name).write_bytes(b"")
    # graphc installed elsewhere (no checkout beside it), run from the project root
    monkeypatch.setattr(data, "__file__", str(tmp_path / "venv" / "site-packages" / "graphc" / "data.py"))
    monkeypatch.delenv("GRAPHC_DATA", raising=False)
    monkeypatch.chdir(project)
    assert data.default_data_dirs() == [str(shared.resolve())]
    paths, from_cache = data._locate("mnist", None)
    assert not from_cache
    assert paths["train_images"].startswith(str(shared.resolve() / "mnist"))


# -- 7. compile takes one placeholder as inputs, as it takes one tensor as outputs ----------------

def test_compile_single_placeholder_inputs():
    x = gc.placeholder((None, 3), name="x")
    for backend in ("numpy", "c"):
        f = gc.compile(x, gc.sum(x * 2.0), backend=backend)
        assert f.inputs == [x]
        np.testing.assert_allclose(f(np.ones((2, 3))), 12.0)
        np.testing.assert_allclose(f(x=np.ones((1, 3))), 6.0)
    with pytest.raises(TypeError, match="inputs must be placeholders"):
        gc.compile(gc.parameter(np.ones(2, np.float32)), gc.constant(1.0))


# -- 8. to_json(outputs, inputs) with some placeholders left out still gives a callable graph -----

def test_to_json_partial_inputs_keeps_every_needed_placeholder():
    a = gc.placeholder((2,), name="a")
    b = gc.placeholder((2,), name="b")
    c = gc.placeholder((2,), name="c")
    out = a * b + c
    ins, outs = gc.export.from_json(gc.export.to_json(out, inputs=[c]))
    assert [p.name for p in ins] == ["c", "a", "b"]
    f = gc.compile(ins, outs, backend="numpy")
    np.testing.assert_allclose(f(np.full(2, 1.0), np.full(2, 2.0), np.full(2, 3.0))[0], [7.0, 7.0])
