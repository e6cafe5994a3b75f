"""gc.nn: layers, Sequential fit / predict / evaluate, weights, saving, against PyTorch."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import graphc as gc
from backends import c_available as _c_available
from graphc import nn, optim

B = "numpy"  # fast default for these tests; the C backend is exercised where marked


def _blobs(n=240, d=5, classes=3, seed=0):
    """Separable Gaussian blobs: a quick classification problem."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, d))
    y = rng.integers(0, classes, n)
    X = (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    return X, y


def _mlp(d=5, classes=3, seed=0, **kw):
    return nn.Sequential([nn.Dense(16, "relu"), nn.Dense(classes, "softmax")], d, seed=seed)


# -- layers -----------------------------------------------------------------------------------

def test_dense_shapes_and_inits():
    m = nn.Sequential([nn.Dense(400, "relu", init="he"), nn.Dense(300, init="glorot"),
                       nn.Dense(200, init="lecun", use_bias=False), nn.Dense(7, init="zeros"),
                       nn.Dense(5, init="normal")], 500, seed=3)
    W1, b1, W2, b2, W3, W4, b4, W5, b5 = m.get_weights()
    assert W1.shape == (500, 400) and b1.shape == (400,) and W3.shape == (300, 200)
    assert W1.dtype == np.float32
    assert np.all(b1 == 0)
    np.testing.assert_allclose(W1.std(), np.sqrt(2 / 500), rtol=0.02)
    limit = np.sqrt(6 / (400 + 300))
    assert np.abs(W2).max() <= limit and np.abs(W2).max() > 0.95 * limit
    np.testing.assert_allclose(W3.std(), np.sqrt(1 / 300), rtol=0.03)
    assert np.all(W4 == 0)
    np.testing.assert_allclose(W5.std(), 0.05, rtol=0.1)
    assert m.output_shape == (5,)
    assert len(m.parameters) == 9
    assert all(p.trainable for p in m.parameters)


def test_layer_argument_errors():
    with pytest.raises(ValueError):
        nn.Dense(0)
    with pytest.raises(ValueError):
        nn.Dense(3, activation="nope")
    with pytest.raises(ValueError):
        nn.Dense(3, init="bogus")
    with pytest.raises(ValueError):
        nn.Dropout(1.5)  # (rate 1 drops everything, as torch.nn.Dropout(1.0))
    with pytest.raises(ValueError):
        nn.Sequential([nn.Dense(3)], 0)
    layer = nn.Dense(3)
    nn.Sequential([layer], 2)
    with pytest.raises(ValueError):
        nn.Sequential([layer], 2)  # a layer belongs to one model


@pytest.mark.parametrize("act", sorted(nn.ACTIVATIONS))
def test_every_activation_builds_and_runs(act):
    m = nn.Sequential([nn.Dense(4, act)], 3)
    out = m.predict(np.random.default_rng(0).normal(size=(5, 3)), backend=B)
    assert out.shape == (5, 4) and np.all(np.isfinite(out))


def test_callable_activation_and_maxout_and_flatten():
    m = nn.Sequential([nn.Flatten(), nn.Maxout(6, pieces=3), nn.Dense(2, lambda t: t * 2.0)],
                      (2, 3))
    W, b, W2, b2 = m.get_weights()
    assert W.shape == (6, 18) and m.layers[1].output_shape == (6,)
    X = np.random.default_rng(1).normal(size=(4, 2, 3)).astype(np.float32)
    z = X.reshape(4, 6) @ W + b
    h = z.reshape(4, 6, 3).max(axis=2)
    np.testing.assert_allclose(m.predict(X, backend=B), 2 * (h @ W2 + b2), rtol=1e-5, atol=1e-6)


# -- fit / predict / evaluate -----------------------------------------------------------------

def test_fit_decreases_loss_and_learns():
    X, y = _blobs()
    m = _mlp()
    before = m.evaluate(X, y, backend=B)
    hist = m.fit(X, y, epochs=8, batch_size=32, backend=B, progress=False,
                 optimizer=optim.Adam(lr=0.01))
    assert set(hist) == {"loss", "accuracy", "time"}
    assert len(hist["loss"]) == 8
    assert hist["loss"][-1] < hist["loss"][0] < before["loss"] + 1.0
    after = m.evaluate(X, y, backend=B)
    assert after["loss"] < before["loss"]
    assert after["accuracy"] > 0.9
    probs = m.predict(X, batch_size=50, backend=B)  # 240 = 4 x 50 + a partial batch
    assert probs.shape == (240, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(after["accuracy"], np.mean(probs.argmax(1) == y))


def test_accuracy_uses_first_maximum_like_argmax():
    # all-zero weights: every row's logits tie, argmax says class 0
    m = nn.Sequential([nn.Dense(3, init="zeros")], 2)
    X = np.ones((6, 2), np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    assert m.evaluate(X, y, backend=B)["accuracy"] == pytest.approx(2 / 6)


def test_validation_history_and_split():
    X, y = _blobs(200)
    m = _mlp()
    hist = m.fit(X[:150], y[:150], epochs=2, batch_size=64, backend=B, progress=False,
                 validation_data=(X[150:], y[150:]))
    assert set(hist) == {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert all(len(v) == 2 for v in hist.values())
    ev = m.evaluate(X[150:], y[150:], backend=B)
    assert hist["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-6)
    hist = _mlp().fit(X, y, epochs=1, backend=B, progress=False, validation_split=0.25)
    assert "val_loss" in hist
    with pytest.raises(ValueError):
        m.fit(X, y, backend=B, validation_split=0.2, validation_data=(X, y), progress=False)


def test_determinism_by_seed():
    X, y = _blobs()
    runs = []
    for _ in range(2):
        m = nn.Sequential([nn.Dense(16, "relu"), nn.Dropout(0.3), nn.Dense(3)], 5, seed=4)
        m.fit(X, y, epochs=2, batch_size=32, backend=B, progress=False, seed=7)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    m = nn.Sequential([nn.Dense(16, "relu"), nn.Dropout(0.3), nn.Dense(3)], 5, seed=4)
    m.fit(X, y, epochs=2, batch_size=32, backend=B, progress=False, seed=8)
    assert not np.array_equal(m.get_weights()[0], runs[0][0])


def test_early_stopping_restores_best_weights():
    # random labels on a few samples: the model over-fits and validation loss climbs
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 10)).astype(np.float32), rng.integers(0, 4, 24)
    Xv, yv = rng.normal(size=(60, 10)).astype(np.float32), rng.integers(0, 4, 60)
    m = nn.Sequential([nn.Dense(64, "relu"), nn.Dense(4)], 10)
    seen = []
    hist = m.fit(X, y, epochs=60, batch_size=8, backend=B, progress=False,
                 optimizer=optim.Adam(lr=0.01), validation_data=(Xv, yv),
                 early_stopping=dict(patience=3, restore_best=True),
                 callback=lambda epoch, logs: seen.append(m.get_weights()))
    n = len(hist["val_loss"])
    assert n < 60
    best = int(np.argmin(hist["val_loss"]))
    assert m.best_epoch == best and n == best + 4
    for a, b in zip(m.get_weights(), seen[best]):
        np.testing.assert_array_equal(a, b)
    assert m.evaluate(Xv, yv, backend=B)["loss"] == pytest.approx(hist["val_loss"][best],
                                                                  rel=1e-6)
    # an int patience without validation data watches the training loss
    h2 = nn.Sequential([nn.Dense(4)], 10).fit(X, y, epochs=3, backend=B, progress=False,
                                              early_stopping=1)
    assert len(h2["loss"]) <= 3
    with pytest.raises(ValueError):
        m.fit(X, y, backend=B, progress=False, early_stopping={"monitor": "val_loss"})


def test_regression_and_binary_losses():
    X, y = gc.data.xor()
    m = nn.Sequential([nn.Dense(8, "tanh", init="glorot"), nn.Dense(1, "sigmoid")], 2, seed=1)
    hist = m.fit(X, y, loss="binary_cross_entropy", optimizer=optim.Adam(lr=0.05), epochs=150,
                 batch_size=4, backend=B, progress=False)
    assert hist["loss"][-1] < 0.1 and hist["accuracy"][-1] == 1.0
    assert m.predict(X, backend=B).shape == (4, 1)
    m2 = nn.Sequential([nn.Dense(1)], 2)
    h = m2.fit(X, y, loss="mse", optimizer=optim.SGD(0.1), epochs=3, batch_size=4, backend=B,
               progress=False)
    assert "accuracy" not in h and set(m2.evaluate(X, y, loss="mse", backend=B)) == {"loss"}
    m3 = nn.Sequential([nn.Dense(1)], 2)
    h = m3.fit(X, y, loss="binary_cross_entropy_with_logits", epochs=1, backend=B,
               progress=False)
    assert "accuracy" in h
    m4 = nn.Sequential([nn.Dense(1)], 2)
    h = m4.fit(X, y, loss=lambda p, t: gc.mean(gc.abs(p - t)), epochs=2, backend=B,
               progress=False, batch_size=2)
    assert set(h) == {"loss", "time"}


def test_softmax_cross_entropy_trains_on_logits():
    # Dense(k, softmax) + cross_entropy and Dense(k) + cross_entropy take identical steps
    X, y = _blobs(64)
    a = nn.Sequential([nn.Dense(8, "tanh"), nn.Dense(3, "softmax")], 5, seed=2)
    b = nn.Sequential([nn.Dense(8, "tanh"), nn.Dense(3)], 5, seed=2)
    for m in (a, b):
        m.fit(X, y, optimizer=optim.SGD(0.5), epochs=2, batch_size=16, backend=B,
              progress=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    g = a.graph("cross_entropy")
    ops = {n.op for n in gc.ir.toposort([g["loss"]])}
    assert "softmax" not in ops  # the loss never goes through the softmax


def test_bad_inputs():
    m = _mlp()
    X, y = _blobs(10)
    with pytest.raises(ValueError):
        m.fit(X[:, :4], y, backend=B, progress=False)
    with pytest.raises(ValueError):
        m.fit(X, y[:5], backend=B, progress=False)
    with pytest.raises(ValueError):
        m.fit(X, y + 0.5, backend=B, progress=False)
    with pytest.raises(ValueError):
        m.fit(X, y + 3, backend=B, progress=False)
    with pytest.raises(ValueError):
        m.fit(X, y, loss="hinge", backend=B, progress=False)
    with pytest.raises(ValueError):
        m.predict(X[:, :2], backend=B)


# -- train vs eval mode -----------------------------------------------------------------------

def test_dropout_train_vs_eval():
    X = np.ones((200, 50), np.float32)
    m = nn.Sequential([nn.Dropout(0.5)], 50)
    np.testing.assert_array_equal(m.predict(X, backend=B), X)  # identity in evaluation
    g = m.graph(loss="mse")
    f = gc.compile([g["inputs"][0]], g["output"], backend=B)
    out = f(X)
    assert set(np.unique(out)) == {0.0, 2.0}  # inverted dropout: kept units scaled by 2
    assert 0.4 < np.mean(out == 0) < 0.6
    assert not np.array_equal(f(X), out)  # a new mask each call


def test_batchnorm_train_vs_eval_and_running_stats():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(64, 4)) * 3 + 5).astype(np.float32)
    m = nn.Sequential([nn.BatchNorm()], 4)
    assert len(m.parameters) == 2 and len(m.all_parameters) == 4
    assert [p.trainable for p in m.all_parameters] == [True, True, False, False]
    # evaluation uses the running statistics (initially mean 0, var 1): about the identity
    np.testing.assert_allclose(m.predict(X, backend=B), X / np.sqrt(1 + 1e-5), rtol=1e-5)
    m.fit(X, X, loss="mse", optimizer=optim.SGD(1e-9), epochs=1, batch_size=64, backend=B,
          progress=False, shuffle=False)
    gamma, beta, rmean, rvar = m.get_weights()
    np.testing.assert_allclose(rmean, 0.1 * X.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rvar, 0.9 + 0.1 * X.var(0, ddof=1), rtol=1e-4)
    g = m.graph(loss="mse", training=True)
    out = gc.compile([g["inputs"][0]], g["output"], backend=B)(X)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-4)  # batch statistics in training
    np.testing.assert_allclose(out.std(0), 1, rtol=1e-3)
    ev = m.predict(X, backend=B)
    assert not np.allclose(ev, out, atol=1e-2)


# -- weight decay -----------------------------------------------------------------------------

def test_weight_decay_adds_wd_times_w_to_weight_gradients():
    X, y = _blobs(32)
    m = nn.Sequential([nn.Dense(6, "relu"), nn.BatchNorm(), nn.Dense(3)], 5)
    wd = 0.3
    plain, decayed = m.graph(), m.graph(weight_decay=wd)
    f = gc.compile(plain["inputs"], plain["grads"], backend=B)
    h = gc.compile(decayed["inputs"], decayed["grads"], backend=B)
    g0, g1 = f(X, y), h(X, y)
    regularized = {p.name for p in m.regularized}
    assert regularized == {"dense_0_W", "dense_1_W"}
    for p, a, b in zip(m.parameters, g0, g1):
        extra = wd * p.value if p.name in regularized else 0.0
        np.testing.assert_allclose(b, a + extra, rtol=1e-5, atol=1e-6, err_msg=p.name)
    # fit reports the data loss; a huge weight decay shrinks the weights
    m2 = _mlp()
    w0 = np.abs(m2.get_weights()[0]).sum()
    m2.fit(X, y, weight_decay=1.0, optimizer=optim.SGD(0.1), epochs=5, backend=B,
           progress=False)
    assert np.abs(m2.get_weights()[0]).sum() < 0.8 * w0


# -- weights and saving -----------------------------------------------------------------------

def test_get_set_weights_roundtrip_and_validation():
    a, b = _mlp(seed=0), _mlp(seed=1)
    X, _ = _blobs(20)
    assert not np.allclose(a.predict(X, backend=B), b.predict(X, backend=B))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(X, backend=B), b.predict(X, backend=B))
    w = a.get_weights()
    w[0][:] = 123  # copies: the model is unchanged
    assert not np.any(a.get_weights()[0] == 123)
    before = b.get_weights()
    with pytest.raises(ValueError, match="expected 4"):
        b.set_weights(w[:3])
    bad = list(w)
    bad[3] = np.zeros(4)
    with pytest.raises(ValueError, match="dense_1_b"):
        b.set_weights(bad)
    for x, y in zip(before, b.get_weights()):  # nothing was changed by the failed calls
        np.testing.assert_array_equal(x, y)


def _full_model():
    return nn.Sequential([nn.Dense(8, "relu", init="glorot"), nn.BatchNorm(), nn.Dropout(0.2),
                          nn.Maxout(4, 2), nn.Dense(3, "softmax")], 5, seed=5)


def test_save_load_roundtrip(tmp_path):
    X, y = _blobs(64)
    m = _full_model()
    m.fit(X, y, epochs=1, batch_size=16, backend=B, progress=False)
    path = tmp_path / "model"
    assert m.save(path) == str(path)
    assert sorted(os.listdir(path)) == ["model.json", "weights.npz"]
    loaded = nn.load(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in m.layers]
    np.testing.assert_array_equal(loaded.predict(X, backend=B), m.predict(X, backend=B))
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    # saving again replaces the model atomically; no temporary directories are left behind
    m.fit(X, y, epochs=1, batch_size=16, backend=B, progress=False)
    m.save(path)
    np.testing.assert_array_equal(nn.load(path).predict(X, backend=B), m.predict(X, backend=B))
    assert sorted(os.listdir(tmp_path)) == ["model"]
    # refuses to clobber other things
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        m.save(tmp_path / "other")
    with pytest.raises(ValueError, match="function"):
        nn.Sequential([nn.Dense(2, lambda t: t)], 2).save(tmp_path / "fn")


def _saved(tmp_path):
    path = tmp_path / "m"
    nn.Sequential([nn.Dense(4, "relu"), nn.Dense(2)], 3).save(path)
    return path


def _edit_json(path, change):
    arch = json.loads((path / "model.json").read_text())
    change(arch)
    (path / "model.json").write_text(json.dumps(arch))


def _rewrite_npz(path, change):
    with np.load(path / "weights.npz") as z:
        arrays = dict(z)
    change(arrays)
    np.savez(path / "weights.npz", **arrays)


BAD_FILES = {
    "not_json": ("model.json", lambda p: (p / "model.json").write_text("{nope")),
    "not_object": ("model.json", lambda p: (p / "model.json").write_text("[1, 2]")),
    "wrong_format": ("model.json", lambda p: _edit_json(p, lambda a: a.update(format="x"))),
    "unknown_layer": ("model.json", lambda p: _edit_json(
        p, lambda a: a["layers"][0].update(type="Conv2D"))),
    "bad_layer_config": ("model.json", lambda p: _edit_json(
        p, lambda a: a["layers"][0]["config"].update(activation="os.system"))),
    "extra_config": ("model.json", lambda p: _edit_json(
        p, lambda a: a["layers"][0]["config"].update(evil=1))),
    "missing_json": ("model.json", lambda p: (p / "model.json").unlink()),
    "missing_npz": ("weights.npz", lambda p: (p / "weights.npz").unlink()),
    "missing_key": ("weights.npz", lambda p: _rewrite_npz(p, lambda a: a.pop("dense_1_b"))),
    "extra_key": ("weights.npz", lambda p: _rewrite_npz(
        p, lambda a: a.update(extra=np.zeros(1)))),
    "wrong_shape": ("weights.npz", lambda p: _rewrite_npz(
        p, lambda a: a.update(dense_0_W=np.zeros((4, 3))))),
    "pickled": ("weights.npz", lambda p: _rewrite_npz(
        p, lambda a: a.update(dense_0_b=np.array([object()] * 4, dtype=object)))),
    "garbage_npz": ("weights.npz", lambda p: (p / "weights.npz").write_bytes(b"PK\x03\x04junk")),
    "raw_pickle": ("weights.npz", lambda p: (p / "weights.npz").write_bytes(
        pickle.dumps({"dense_0_W": np.zeros((3, 4))}))),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_rejects_bad_files(tmp_path, case):
    fname, corrupt = BAD_FILES[case]
    path = _saved(tmp_path)
    corrupt(path)
    with pytest.raises(ValueError) as info:
        nn.load(path)
    assert fname in str(info.value)


def test_load_rejects_non_directory(tmp_path):
    f = tmp_path / "file.npz"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="file.npz"):
        nn.load(f)


# -- graph export, backends -------------------------------------------------------------------

def test_graph_and_training_graph():
    m = _mlp()
    g = m.graph("cross_entropy")
    assert set(g) >= {"inputs", "output", "loss", "grads", "params"}
    x, y = g["inputs"]
    assert x.shape == (None, 5) and y.dtype == "int64"
    assert [p.name for p in g["params"]] == ["dense_0_W", "dense_0_b", "dense_1_W", "dense_1_b"]
    inputs, outputs, pairs = m.training_graph()
    assert len(pairs) == 4 and outputs[0].shape == ()


def test_c_backend_falls_back_with_warning():
    if _c_available():
        pytest.skip("the C backend is available here")
    X, y = _blobs(32)
    with pytest.warns(RuntimeWarning, match="numpy"):
        _mlp().fit(X, y, epochs=1, progress=False)  # default backend "c"


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_fit_on_each_backend(backend):
    if backend == "c" and not _c_available():
        pytest.skip("backend 'c' unavailable")
    X, y = _blobs(100)
    ref, m = _full_model(), _full_model()
    ref.fit(X, y, epochs=2, batch_size=32, backend="numpy", progress=False)
    m.fit(X, y, epochs=2, batch_size=32, backend=backend, progress=False)
    for a, b in zip(ref.get_weights(), m.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.predict(X, backend=backend), ref.predict(X, backend="numpy"),
                               rtol=1e-4, atol=1e-5)


# -- against PyTorch --------------------------------------------------------------------------

def _torch_mlp(torch, m):
    W1, b1, W2, b2 = [torch.tensor(w) for w in m.get_weights()]
    lin1, lin2 = torch.nn.Linear(*W1.shape), torch.nn.Linear(*W2.shape)
    with torch.no_grad():
        lin1.weight.copy_(W1.T)
        lin1.bias.copy_(b1)
        lin2.weight.copy_(W2.T)
        lin2.bias.copy_(b2)
    return torch.nn.Sequential(lin1, torch.nn.Tanh(), lin2)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_fit_matches_pytorch(opt):
    torch = pytest.importorskip("torch")
    X, y = _blobs(96)
    m = nn.Sequential([nn.Dense(12, "tanh"), nn.Dense(3, "softmax")], 5, seed=3)
    net = _torch_mlp(torch, m)
    if opt == "sgd":
        ours = optim.SGD(0.2, momentum=0.9)
        theirs = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
        bs = len(X)  # one full batch per epoch: the order of samples cannot matter
    else:
        ours = optim.Adam(0.01)
        theirs = torch.optim.Adam(net.parameters(), lr=0.01)
        bs = 32
    hist = m.fit(X, y, optimizer=ours, epochs=3, batch_size=bs, backend=B, progress=False,
                 shuffle=False)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    losses = []
    for _ in range(3):
        total = 0.0
        for i in range(0, len(X), bs):
            theirs.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(Xt[i:i + bs]), yt[i:i + bs])
            loss.backward()
            theirs.step()
            total += loss.item() * len(Xt[i:i + bs])
        losses.append(total / len(X))
    np.testing.assert_allclose(hist["loss"], losses, rtol=1e-5)
    W1, b1, W2, b2 = m.get_weights()
    np.testing.assert_allclose(W1, net[0].weight.detach().numpy().T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b2, net[2].bias.detach().numpy(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        probs = torch.softmax(net(Xt), 1).numpy()
    np.testing.assert_allclose(m.predict(X, backend=B), probs, rtol=1e-4, atol=1e-5)
