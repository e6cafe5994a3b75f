"""Tests for graphc.plot."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

import graphc.plot as plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HISTORY = {
    "loss": [2.3, 1.1, 0.7, 0.5],
    "val_loss": [2.0, 1.2, 0.8, 0.6],
    "accuracy": [0.2, 0.6, 0.8, 0.85],
    "val_accuracy": [0.25, 0.55, 0.75, 0.8],
    "lr": [0.1, 0.1, 0.05, 0.05],  # ignored
}


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, checking its signature."""
    blob = path.read_bytes()
    assert blob[:8] == PNG_SIGNATURE
    assert blob[12:16] == b"IHDR"
    return struct.unpack(">II", blob[16:24])


def test_history_writes_png(matplotlib, tmp_path):
    backend = matplotlib.get_backend()
    out = tmp_path / "curves.png"
    result = plot.history(HISTORY, out)
    assert result == str(out)
    width, height = png_size(out)
    assert width > height  # two subplots side by side
    assert matplotlib.get_backend() == backend  # the user's backend is untouched


def test_history_loss_only_creates_parent_dirs(matplotlib, tmp_path):
    out = tmp_path / "a" / "b" / "loss.png"
    assert plot.history({"loss": [1.0, 0.5, 0.25]}, str(out)) == str(out)
    two = tmp_path / "two.png"
    plot.history(HISTORY, two)
    assert png_size(out)[0] < png_size(two)[0]  # one subplot only


def test_history_accepts_aliases_and_history_objects(matplotlib, tmp_path):
    class Run:
        history = {"loss": [1.0, 0.5], "acc": [0.5, 0.9], "val_acc": [0.4, 0.8]}

    out = tmp_path / "run.png"
    plot.history(Run(), out)
    png_size(out)


def test_history_long_run(matplotlib, tmp_path):
    out = tmp_path / "long.png"
    plot.history({"loss": [1.0 / (i + 1) for i in range(200)]}, out, title="long run")
    png_size(out)


def test_history_without_curves_raises(tmp_path):
    with pytest.raises(ValueError, match="no curve"):
        plot.history({"lr": [0.1]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no curve"):
        plot.history({"loss": []}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot.history([1.0, 2.0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install graphc\[plot\]"):
        plot.history(HISTORY, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
