"""fit's internal mini-batch iterator (``graphc.data._reused_batches``): the same batches as
the public ``graphc.data.batches`` for the same seed, gathered a chunk at a time into reused
buffers (compiled row gather where gcc is available, ``np.take`` otherwise)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import graphc as gc
from graphc import data


def _copies(it):
    return [(xb.copy(), yb.copy()) for xb, yb in it]  # the buffers are reused: copy each


def _assert_same(got, want):
    assert len(got) == len(want)
    for (xa, ya), (xb, yb) in zip(got, want):
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("use_c", [True, False])
@pytest.mark.parametrize("n,batch,chunk", [
    (1000, 128, 3),     # 1000 = 2 chunks of 384 + 232: neither a multiple of the batch nor chunk
    (1000, 128, None),  # the default chunk (all of it here)
    (257, 10, 4),
    (7, 3, 1),
    (5, 10, 2),         # fewer samples than one batch
    (1, 1, 5),
])
def test_reused_batches_match_batches(use_c, n, batch, chunk):
    rng = np.random.default_rng(n)
    X = rng.random((n, 3, 5)).astype(np.float32)
    y = rng.integers(0, 10, n)
    for seed in (0, 12345, 2 ** 62):
        want = _copies(data.batches(X, y, batch, shuffle=True, seed=seed))
        got = _copies(data._reused_batches(X, y, batch, shuffle=True, seed=seed,
                                           chunk_batches=chunk, use_c=use_c))
        _assert_same(got, want)
    _assert_same(_copies(data._reused_batches(X, y, batch, shuffle=False, chunk_batches=chunk,
                                              use_c=use_c)),
                 _copies(data.batches(X, y, batch, shuffle=False)))


def test_reused_batches_other_layouts():
    rng = np.random.default_rng(0)
    X = rng.random((301, 20)).astype(np.float32)
    y = rng.random((301, 2)).astype(np.float32)       # float targets (mse)
    Xro = X.copy()
    Xro.flags.writeable = False                          # read-only input
    Xf = np.asfortranarray(X)                            # not C-contiguous: numpy fallback
    for Xin in (X, Xro, Xf, X.astype(np.float64)):
        _assert_same(_copies(data._reused_batches(Xin, y, 32, seed=4, chunk_batches=3)),
                     _copies(data.batches(Xin, y, 32, seed=4)))
    assert list(data._reused_batches(X[:0], y[:0], 4, seed=1)) == []


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_compiled_gather_is_used_and_reuses_buffers():
    assert data._gather_rows_fn() is not None
    X = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    y = np.arange(40)
    it = data._reused_batches(X, y, 4, seed=0, chunk_batches=2)
    first, _ = next(it)
    _, _ = next(it)
    third, _ = next(it)  # the next chunk, gathered into the same buffer
    assert np.shares_memory(first, third)


def test_fit_same_results_as_with_public_batches(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.random((333, 12)).astype(np.float32)
    y = rng.integers(0, 4, 333)

    def train():
        model = gc.nn.Sequential([gc.nn.Dense(16, "relu"), gc.nn.Dense(4)], input_dim=12,
                                 seed=1)
        hist = model.fit(X, y, optimizer=gc.optim.Adam(1e-2), epochs=3, batch_size=50,
                         backend="numpy", progress=False, seed=7)
        return hist, model.get_weights()

    hist_new, w_new = train()

    def public(X, y, batch_size, shuffle=True, seed=0, **kw):
        return data.batches(X, y, batch_size, shuffle=shuffle, seed=seed)
    monkeypatch.setattr(data, "_reused_batches", public)
    hist_old, w_old = train()
    assert hist_new["loss"] == hist_old["loss"]
    assert hist_new["accuracy"] == hist_old["accuracy"]
    for a, b in zip(w_new, w_old):
        np.testing.assert_array_equal(a, b)
