"""`graphc train`: runs end to end on the embedded data set, prints accuracy, saves a model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graphc as gc
from graphc.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_train_in_process(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--epochs", "2", "--backend", "numpy", "--no-progress", "--limit",
               "600", "--layers", "32", "--batch-size", "32", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "dataset default: 600 training, 600 test samples" in text
    assert "epoch 2/2" in text
    line = next(s for s in text.splitlines() if s.startswith("test accuracy:"))
    acc = float(line.split()[2])
    assert 0.5 < acc <= 1.0  # 2 epochs on 600 digits is far above chance
    assert "time per epoch:" in text
    assert sorted(os.listdir(out / "model")) == ["model.json", "weights.npz"]
    model = gc.nn.load(out / "model")
    X, y = gc.data.load("default")
    (_, _), (Xte, yte) = gc.data.train_val_split(X, y, 0.2, seed=0)
    ev = model.evaluate(Xte[:600], yte[:600], backend="numpy")
    assert ev["accuracy"] == pytest.approx(acc, abs=1e-4)
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["history"]["loss"]) == 2
    pytest.importorskip("matplotlib")
    assert (out / "history.png").stat().st_size > 1000


def test_train_options(tmp_path, capsys):
    rc = main(["train", "--epochs", "1", "--backend", "numpy", "--no-progress", "--limit",
               "300", "--layers", "16,16", "--activation", "tanh", "--optimizer", "sgd",
               "--lr", "0.1", "--momentum", "0.9", "--dropout", "0.2", "--weight-decay",
               "1e-4", "--out", str(tmp_path / "r")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "784-16-16-10 (tanh" in text and "SGD(lr=0.1, momentum=0.9" in text
    model = gc.nn.load(tmp_path / "r" / "model")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]


def test_train_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "--layers", "a,b"])
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "cifar"])
    assert main(["train", "--activation", "nope", "--backend", "numpy", "--limit", "10",
                 "--out", str(tmp_path / "x")]) == 2


def test_missing_dataset_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAPHC_DATA", raising=False)

    def offline(*args, **kwargs):
        raise OSError("offline")
    monkeypatch.setattr("urllib.request.urlopen", offline)
    rc = main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none"),
               "--backend", "numpy", "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "cannot load dataset 'fashion-mnist'" in capsys.readouterr().err


def test_train_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", "train", "--epochs", "1",
                           "--backend", "numpy", "--no-progress", "--limit", "400",
                           "--layers", "32", "--out", str(tmp_path / "tmp")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout
    assert (tmp_path / "tmp" / "model" / "model.json").exists()
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", "train", "--help"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and "--batch-size" in proc.stdout and "--limit" in proc.stdout
