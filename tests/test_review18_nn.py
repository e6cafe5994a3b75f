"""Review 18: conformance of the Keras-like model API (graphc.nn, graphc.optim, fit / evaluate /
predict / save / load) against what a Keras (tf.keras 2.x) or PyTorch user expects."""
import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim

B = "numpy"


def _data(n=37, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)).astype(np.float32),
            rng.integers(0, classes, n).astype(np.int64))


def _model(seed=1, bn=True):
    layers = [nn.Dense(8, "relu")] + ([nn.BatchNorm()] if bn else []) + \
        [nn.Dropout(0.3), nn.Dense(3, "softmax")]
    return nn.Sequential(layers, 4, seed=seed)


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_empty_validation_data_refused_before_training():
    # was: one epoch trained (weights changed), then evaluate() raised "no samples"
    X, y = _data()
    m = _model()
    w = m.get_weights()
    with pytest.raises(ValueError, match="validation_data: no samples"):
        m.fit(X, y, epochs=1, backend=B, progress=False, validation_data=(X[:0], y[:0]))
    assert _same(w, m.get_weights())


@pytest.mark.parametrize("opt", [None, "adam", "RMSProp"])
def test_second_fit_continues_the_default_or_named_optimizer(opt):
    # was: fit(optimizer=None or a name) built a fresh optimizer each call, so a second fit
    # restarted Adam's moments and step count (Keras keeps the compiled optimizer's state;
    # PyTorch users keep their optimizer); now two fits of one epoch == one instance reused
    X, y = _data()
    kw = dict(epochs=1, backend=B, progress=False, shuffle=False)
    m1 = _model()
    m1.fit(X, y, optimizer=opt, **kw)
    m1.fit(X, y, optimizer=opt, **kw)
    inst = optim.get(opt or "adam")
    m2 = _model()
    m2.fit(X, y, optimizer=inst, **kw)
    m2.fit(X, y, optimizer=inst, **kw)
    assert _same(m1.get_weights(), m2.get_weights())


@pytest.mark.parametrize("n, batch_size", [(5, 1), (1, 128)])
def test_batchnorm_refuses_a_training_batch_of_one_sample(n, batch_size):
    # (a last batch of one after larger ones is skipped with a warning instead: see
    # tests/test_review17_ops.py)
    # was: a 1-sample batch trained silently: variance 0 and the running variance pulled 10%
    # towards 0 per such step (torch.nn.functional.batch_norm raises "Expected more than 1
    # value per channel when training"); refused before any weight changes
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="more than 1 value"):
        torch.nn.BatchNorm1d(8).train()(torch.zeros(1, 8))
    X, y = _data(n)
    m = _model()
    w = m.get_weights()
    with pytest.raises(ValueError, match="BatchNorm needs more than 1 sample"):
        m.fit(X, y, epochs=1, batch_size=batch_size, backend=B, progress=False)
    assert _same(w, m.get_weights())
    # without batch norm the same data trains; with a batch of 2 left over too
    _model(bn=False).fit(X, y, epochs=1, batch_size=batch_size, backend=B, progress=False)
    if n > 2:
        _model().fit(X[:-1], y[:-1], epochs=1, batch_size=max(batch_size, 2), backend=B,
                     progress=False)


def test_early_stopping_negative_min_delta_is_its_magnitude_as_keras():
    # was: min_delta=-0.5 made every worse epoch an "improvement" (score > best - 0.5), so
    # training never stopped and restore_best brought back the worst weights; Keras takes
    # abs(min_delta)
    from graphc.nn.training import EarlyStopping

    class NoWeights:
        def get_weights(self):
            return []

    def run(min_delta):
        es = EarlyStopping.from_arg({"patience": 2, "min_delta": min_delta}, False)
        for epoch, v in enumerate([1.0, 1.3, 1.6, 0.2]):
            if es.update(epoch, {"loss": v}, NoWeights()):
                return epoch, es.best_epoch
        return None, es.best_epoch

    assert run(-0.5) == run(0.5) == (2, 0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="min_delta"):
            EarlyStopping(min_delta=bad)


@pytest.mark.parametrize("act", [None, "relu", "tanh", "log_softmax"])
def test_binary_cross_entropy_on_outputs_that_are_no_probabilities_is_refused(act):
    # was: Dense(1) + "binary_cross_entropy" trained on log(negative outputs): NaN loss and
    # weights, no message (torch.nn.functional.binary_cross_entropy raises for inputs outside
    # [0, 1]); refused with a pointer to the logits form
    X, y = gc.data.xor()
    m = nn.Sequential([nn.Dense(8, "tanh"), nn.Dense(1, act)], 2)
    w = m.get_weights()
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits"):
        m.fit(X, y, loss="binary_cross_entropy", optimizer=optim.SGD(0.5), epochs=5,
              batch_size=4, backend=B, progress=False)
    with pytest.raises(ValueError, match="probabilities"):
        m.evaluate(X, y, loss="binary_cross_entropy", backend=B)
    assert _same(w, m.get_weights())
    h = m.fit(X, y, loss="binary_cross_entropy_with_logits", optimizer=optim.SGD(0.5),
              epochs=5, batch_size=4, backend=B, progress=False)
    assert np.isfinite(h["loss"]).all()
    # outputs of unknown range (a final batch norm, a function) stay accepted, as a sigmoid does
    for last in ([nn.Dense(1, "sigmoid")], [nn.Dense(1, "sigmoid"), nn.Dropout(0.1)]):
        m = nn.Sequential([nn.Dense(8, "tanh")] + last, 2)
        m.fit(X, y, loss="binary_cross_entropy", epochs=1, backend=B, progress=False)


def test_validation_split_of_no_sample_refused_before_training():
    # 1% of 37 samples rounds to no validation sample: was an epoch trained, then evaluate()'s
    # "no samples"; Keras raises up front too
    X, y = _data()
    m = _model()
    w = m.get_weights()
    with pytest.raises(ValueError, match="validation_split=0.01 leaves no validation sample"):
        m.fit(X, y, epochs=1, backend=B, progress=False, validation_split=0.01)
    assert _same(w, m.get_weights())


# -- contracts that already hold, kept from regressing ------------------------------------------

from tests.backends import C  # noqa: E402


@pytest.mark.parametrize("backend", ["numpy", C])
def test_same_seed_gives_bit_identical_weights_and_history(backend, capsys):
    X, y = _data(53)
    runs = []
    for _ in range(2):
        m = _model()
        h = m.fit(X, y, epochs=3, batch_size=10, backend=backend, seed=5, progress=False,
                  validation_data=(X[:20], y[:20]))
        runs.append((h, m.get_weights()))
    (h1, w1), (h2, w2) = runs
    assert _same(w1, w2)
    assert sorted(h1) == ["accuracy", "loss", "time", "val_accuracy", "val_loss"]
    assert all(len(v) == 3 for v in h1.values())
    assert {k: h1[k] for k in h1 if k != "time"} == {k: h2[k] for k in h2 if k != "time"}
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # progress=False prints nothing


def test_get_weights_covers_running_statistics_and_set_weights_is_atomic():
    m = nn.Sequential([nn.Dense(5, "relu"), nn.BatchNorm(), nn.Dense(4, "relu"),
                       nn.BatchNorm(), nn.Dense(3)], 4)
    assert len(m.parameters) == 10 and len(m.get_weights()) == 14  # 2 x (mean, var) more
    names = [p.name for p in m.all_parameters]
    assert "batch_norm_0_running_mean" in names and "batch_norm_1_running_var" in names
    w = m.get_weights()
    new = [a + 1.0 for a in w]
    m.set_weights(new)
    assert _same(new, m.get_weights())
    for bad, msg in ((new[:-1], "expected 14 arrays"),
                     (new[:-1] + [np.zeros((4,), np.float32)], "shape"),
                     (new[:-1] + [np.array(["a"] * 3)], "numbers")):
        bad = [a * 5 for a in bad[:5]] + bad[5:]  # the first arrays are valid: none may stick
        with pytest.raises(ValueError, match=msg):
            m.set_weights(bad)
        assert _same(new, m.get_weights())


def test_predict_and_evaluate_batching_and_evaluation_mode():
    X, y = _data(300)
    m = _model()
    m.fit(X, y, epochs=1, batch_size=16, backend=B, progress=False)
    full = m.predict(X, backend=B, batch_size=300)
    for bs in (1, 7, 256):
        np.testing.assert_allclose(m.predict(X, backend=B, batch_size=bs), full, atol=1e-6)
    assert m.predict(X[:0], backend=B).shape == (0, 3)
    np.testing.assert_allclose(m.predict(X[:1], backend=B), full[:1], atol=1e-6)
    np.testing.assert_allclose(m.predict(X[0], backend=B), full[0], atol=1e-6)
    np.testing.assert_array_equal(m.predict(X, backend=B), m.predict(X, backend=B))  # no dropout
    e = m.evaluate(X, y, backend=B, batch_size=7)
    assert e["loss"] == pytest.approx(float(-np.log(full[np.arange(300), y]).mean()), rel=1e-5)
    assert e["accuracy"] == pytest.approx(float((full.argmax(1) == y).mean()))


def test_save_load_every_layer_type_unicode_path_and_hostile_files(tmp_path):
    import json
    import shutil
    X, y = _data()
    m = nn.Sequential([nn.Dense(8, "prelu"), nn.BatchNorm(), nn.Dropout(0.2), nn.Maxout(5, 3),
                       nn.Dense(6, "maxout", pieces=3), nn.Activation("tanh"),
                       nn.Dense(3, "softmax", init="glorot", use_bias=False)], 4)
    m.fit(X, y, epochs=1, batch_size=8, backend=B, progress=False)
    path = tmp_path / "mödel ünï 😀"
    m.save(path)
    loaded = nn.load(path)
    assert repr(loaded) == repr(m) and _same(loaded.get_weights(), m.get_weights())
    np.testing.assert_array_equal(loaded.predict(X, backend=B), m.predict(X, backend=B))
    with pytest.raises(ValueError, match="Python function"):
        nn.Sequential([nn.Dense(3, activation=lambda t: t)], 4).save(tmp_path / "fn")

    def hostile(name, edit):
        q = tmp_path / name
        shutil.copytree(path, q)
        edit(q)
        with pytest.raises(ValueError) as e:
            nn.load(q)
        return str(e.value)

    def truncate(q):
        b = (q / "weights.npz").read_bytes()
        (q / "weights.npz").write_bytes(b[:len(b) // 2])

    def version(q):
        a = json.loads((q / "model.json").read_text())
        a["version"] = 3
        (q / "model.json").write_text(json.dumps(a))

    def shape(q):
        w = dict(np.load(q / "weights.npz"))
        w["dense_0_W"] = w["dense_0_W"][:2]
        np.savez(q / "weights.npz", **w)

    assert "weights.npz" in hostile("t", truncate)
    assert "unsupported version 3" in hostile("v", version)
    assert "dense_0_W has shape (2, 8)" in hostile("s", shape)


def test_graphc_activation_functions_act_as_their_names(tmp_path):
    # was: Dense(3, activation=gc.softmax) was an opaque function: "cross_entropy" took the
    # softmax output for logits (a double softmax: evaluate gave 1.18 where the same weights
    # with activation="softmax" give the true 2.54) and save() refused it; Keras treats
    # tf.nn.softmax as "softmax" (from_logits=False) and saves it by name
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(40, 4)) * 3).astype(np.float32)
    y = rng.integers(0, 3, 40)
    by_name = nn.Sequential([nn.Dense(3, activation="softmax")], 4, seed=0)
    by_fn = nn.Sequential([nn.Dense(3, activation=gc.softmax)], 4, seed=0)
    p = by_name.predict(X, backend=B)
    assert by_fn.evaluate(X, y, backend=B)["loss"] == pytest.approx(
        float(-np.log(p[np.arange(40), y]).mean()), rel=1e-5)
    assert by_fn.layers[0].activation == "softmax"
    by_fn.save(tmp_path / "m")
    np.testing.assert_array_equal(nn.load(tmp_path / "m").predict(X, backend=B), p)
    for fn, name in ((gc.relu, "relu"), (gc.sigmoid, "sigmoid"), (gc.silu, "silu"),
                     (gc.leaky_relu, "leaky_relu"), (gc.gelu, "gelu"), (gc.elu, "elu")):
        assert nn.Dense(2, activation=fn).activation == name
        assert nn.Activation(fn).activation == name
    own = lambda t: gc.tanh(t)  # noqa: E731  (a user function stays a function)
    assert nn.Dense(2, activation=own).activation is own


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("bad", [np.array(["0", "1", "1", "0"]), np.array([0, 1, 1, 0], complex),
                                 np.array([0, 1, None, 0], object)])
def test_float_losses_refuse_targets_that_are_not_numbers(loss, bad):
    # was: numeric strings parsed silently, complex targets cast with a ComplexWarning only,
    # None read as NaN ("y contains NaN"); now the same "numbers" rule as X, naming the loss
    X, _ = gc.data.xor()
    m = nn.Sequential([nn.Dense(1, "sigmoid" if loss == "binary_cross_entropy" else None)], 2)
    w = m.get_weights()
    with pytest.raises(ValueError, match=f"{loss}: targets must be numbers"):
        m.fit(X, bad, loss=loss, epochs=1, backend=B, progress=False)
    with pytest.raises(ValueError, match=f"{loss}: targets must be numbers"):
        m.evaluate(X, bad, loss=loss, backend=B)
    assert _same(w, m.get_weights())
    m.fit(X, np.array([0, 1, 1, 0], np.int64), loss=loss, epochs=1, backend=B, progress=False)
    m.fit(X, np.array([False, True, True, False]), loss=loss, epochs=1, backend=B,
          progress=False)


def test_copy_of_a_model_does_not_carry_the_optimizer_fit_made():
    # the optimizer a name creates is the model's (previous fix); its state is keyed by the
    # parameters' ids, which a copy's parameters do not share: the copy starts its own
    import copy
    import pickle
    X, y = _data()
    m = _model()
    m.fit(X, y, epochs=1, backend=B, progress=False)
    assert "adam" in m._optimizers
    for c in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert "_optimizers" not in c.__dict__
        fresh = copy.deepcopy(c)
        c.fit(X, y, epochs=1, backend=B, progress=False, shuffle=False)
        fresh.fit(X, y, epochs=1, backend=B, progress=False, shuffle=False,
                  optimizer=optim.Adam(lr=1e-3))
        assert _same(c.get_weights(), fresh.get_weights())


@pytest.mark.parametrize("dim", [None, 4.0, object()])
def test_sequential_input_dim_of_another_type_has_a_clear_error(dim):
    # was: TypeError "'NoneType' object is not iterable" / "'float' object is not iterable"
    layer = nn.Dense(3)
    with pytest.raises(ValueError, match="input_dim must be a positive int or a tuple"):
        nn.Sequential([layer], dim)
    assert nn.Sequential([layer], 4).output_shape == (3,)  # the layer is still free


def test_validation_predict_evaluate_leave_weights_and_running_statistics_alone():
    # evaluation mode everywhere but the training step: the same fit with or without
    # validation data (of another distribution), then predict / evaluate, ends with the same
    # weights, batch-norm running statistics included
    X, y = _data()
    ws = []
    for val in (None, (X * 3 + 1, y)):
        m = _model()
        m.fit(X, y, epochs=2, backend=B, progress=False, validation_data=val)
        m.predict(X * 5, backend=B)
        m.evaluate(X * 5, y, backend=B)
        ws.append(m.get_weights())
    assert _same(*ws)


@pytest.mark.parametrize("bad", [lambda r, fi, fo, s: np.zeros(3),
                                 lambda r, fi, fo, s: np.zeros(s, complex),
                                 lambda r, fi, fo, s: "x"])
@pytest.mark.parametrize("make", [lambda init: nn.Dense(3, init=init),
                                  lambda init: nn.Maxout(3, 2, init=init)])
def test_custom_init_of_wrong_shape_or_type_fails_at_build(bad, make):
    # was: shape (3,) for W (4, 3) built, then predict raised a matmul ShapeError; complex
    # weights lost their imaginary part with a warning; "x" gave numpy's conversion error
    layer = make(bad)
    with pytest.raises(ValueError, match=r"init .* must return real numbers of shape \(4, "):
        nn.Sequential([layer], 4)
    assert layer.input_shape is None  # unbuilt, reusable
    ok = make(lambda r, fi, fo, s: np.ones(s, np.float64))
    assert nn.Sequential([ok], 4).get_weights()[0].dtype == np.float32
