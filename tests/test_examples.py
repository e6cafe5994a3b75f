"""Each example runs (--quick, numpy backend) and prints its key lines; the slow tests train
on the real data sets with the C backend and check the accuracies the lectures report."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import graphc as gc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_example(name, *args, timeout=120, backend="numpy", tmp_path=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(EXAMPLES / name), "--backend", backend, *args]
    if tmp_path is not None:
        cmd += ["--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=tmp_path or ROOT)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def accuracy(text, label="test accuracy"):
    m = re.search(rf"{label}: ([0-9.]+)", text)
    assert m, text
    return float(m.group(1))


def test_xor(tmp_path):
    out = run_example("xor.py", "--quick", tmp_path=tmp_path)
    lines = out.splitlines()
    i = lines.index("1. linear model, least squares (normal equations):")
    assert lines[i + 1].strip() == "w = [0, 0], b = 0.5"
    assert lines[i + 2].strip() == "predictions: [0.5, 0.5, 0.5, 0.5]"
    assert "predictions [0.5, 0.5, 0.5, 0.5]" in out  # gradient descent agrees
    i = next(k for k, s in enumerate(lines) if s.startswith("2. ReLU network"))
    assert lines[i + 1].strip() == "predictions: [0, 1, 1, 0]"
    assert lines[-1].strip().endswith("rounded [0, 1, 1, 0]")


def test_mnist_mlp_quick(tmp_path):
    out = run_example("mnist_mlp.py", "--quick", tmp_path=tmp_path)
    assert accuracy(out) > 0.5


def test_fashion_keras_demo_quick(tmp_path):
    out = run_example("fashion_mnist_keras_demo.py", "--quick", tmp_path=tmp_path)
    assert "flatten_0 (Flatten)" in out
    assert accuracy(out) > 0.5


def test_activations_quick(tmp_path):
    out = run_example("activations.py", "--quick", "--activations", "relu,tanh,selu,gelu",
                      tmp_path=tmp_path)
    for act in ("relu", "tanh", "selu", "gelu"):
        assert re.search(rf"^\s*{act}: final training loss [0-9.]+, test accuracy", out, re.M)
    if "saved plot" in out:
        assert (tmp_path / "activations.png").stat().st_size > 1000


def test_zero_init_quick(tmp_path):
    out = run_example("zero_init.py", "--quick", tmp_path=tmp_path)
    m = re.search(r"zero init: max difference between hidden units = (\S+) \(all hidden units "
                  r"(identical|identical up to float rounding)\)", out)
    assert m, out
    assert float(m.group(1)) < 1e-5
    spread = re.search(r"glorot init: .* differ by at most (\S+)", out)
    assert float(spread.group(1)) > 0.1


def test_regularization_quick(tmp_path):
    out = run_example("regularization.py", "--quick", tmp_path=tmp_path)
    for name in ("baseline", "L2 (weight_decay=", "dropout (", "early stopping ("):
        assert name in out
    if "saved plot" in out:
        assert (tmp_path / "regularization.png").stat().st_size > 1000


# -- real data, C backend (run in CI) -----------------------------------------------------------

def _needs_real_data_and_c(subdir):
    if not (SHARED_DATA / subdir).is_dir() and not os.environ.get("GRAPHC_DATA"):
        pytest.skip(f"{subdir} data not found (set GRAPHC_DATA)")
    try:
        gc.compile([], gc.constant(1.0), backend="c")
    except gc.BackendUnavailable as e:
        pytest.skip(f"backend 'c' unavailable: {e}")


@pytest.mark.slow
def test_mnist_mlp_reaches_98_percent(tmp_path):
    _needs_real_data_and_c("mnist")
    out = run_example("mnist_mlp.py", backend="c", timeout=1800, tmp_path=tmp_path)
    assert "60000 training" in out
    assert accuracy(out) >= 0.98


@pytest.mark.slow
def test_fashion_keras_demo_matches_lecture(tmp_path):
    _needs_real_data_and_c("fashion-mnist")
    out = run_example("fashion_mnist_keras_demo.py", backend="c", timeout=1800,
                      tmp_path=tmp_path)
    assert "60000 training" in out
    assert accuracy(out) >= 0.875
