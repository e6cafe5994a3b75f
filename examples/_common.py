"""Shared plumbing of the examples: command-line flags, backend fallback, data lookup.

Every example takes ``--backend`` (default ``c``, falling back to numpy where it cannot run),
``--epochs``, ``--quick`` (a tiny subset and one or two epochs, for tests), ``--seed``, ``--out``
(where plots go) and ``--data-dir``.  Data comes from ``--data-dir``, else ``GRAPHC_DATA``, else
``../shared/data`` next to the repository if present, else the MNIST test set embedded in graphc.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import graphc  # noqa: F401
except ImportError:  # running from a checkout without `pip install .`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402


def parser(description: str, epochs: int, epochs_help: str = "passes over the training set",
           files: bool = True) -> argparse.ArgumentParser:
    """The common flags; ``files=False`` for an example that reads no data and writes no plot
    (its --data-dir and --out are accepted, and said to be unused)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", default="c", choices=["c", "numpy", "cuda", "opencl"],
                   help="compiled backend (falls back to numpy where it cannot run)")
    p.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    p.add_argument("--quick", action="store_true",
                   help="a tiny subset and one or two epochs, or fewer steps (for tests)")
    p.add_argument("--seed", type=int, default=0, help="random seed (initialization, data order)")
    unused = "" if files else " (unused: this example reads no data set)"
    p.add_argument("--data-dir", default=None,
                   help="directory with the IDX files (else GRAPHC_DATA, ../shared/data, "
                        "the embedded MNIST test set)" + unused)
    p.add_argument("--out", default="example-output",
                   help="directory for plots" + ("" if files else
                                                 " (unused: this example plots nothing)"))
    return p


def backend(name: str) -> str:
    """``name`` if it runs here, else ``"numpy"`` (with a warning line)."""
    if name == "numpy":
        return name
    try:
        gc.compile([], gc.constant(1.0), backend=name)
        return name
    except gc.BackendUnavailable as e:
        print(f"warning: backend {name!r} is unavailable ({e}); using numpy", file=sys.stderr)
        return "numpy"


def _data_root(data_dir):
    if data_dir:
        return data_dir
    if os.environ.get("GRAPHC_DATA"):
        return os.environ["GRAPHC_DATA"]
    shared = ROOT.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def load(name: str, data_dir=None, quick=False, n_quick=(2000, 500), seed=0):
    """``(X_train, y_train), (X_test, y_test), source`` for ``"mnist"`` or ``"fashion-mnist"``.

    Without the data set's files it falls back to the embedded MNIST test set split 8k/2k
    (``source`` says which), so every example runs offline."""
    root = _data_root(data_dir)
    data = None
    if root is not None:
        try:
            data = gc.data.load(name, path=root)
            source = f"{name} from {root}"
        except (gc.data.DatasetNotFoundError, ValueError, OSError) as e:
            print(f"note: {name} not found under {root} ({e.__class__.__name__})",
                  file=sys.stderr)
    if data is None:
        X, y = gc.data.load("default")
        data = gc.data.train_val_split(X, y, 0.2, seed=seed)
        source = "embedded MNIST test set (8k/2k split): pass --data-dir for the full data"
        print(f"note: using the {source}", file=sys.stderr)
    (Xtr, ytr), (Xte, yte) = data
    if quick:
        Xtr, ytr, Xte, yte = Xtr[:n_quick[0]], ytr[:n_quick[0]], Xte[:n_quick[1]], \
            yte[:n_quick[1]]
    return (Xtr, ytr), (Xte, yte), source


def plot_curves(series: dict, path: str, ylabel: str, title: str) -> None:
    """One figure with a line per entry of ``series`` (label -> per-epoch values)."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("note: matplotlib is not installed; no plot", file=sys.stderr)
        return
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    # one color per curve family ("name: train" and "name: val" share one), 20 distinct
    families = list(dict.fromkeys(label.split(":")[0] for label in series))
    cmap = matplotlib.colormaps["tab10" if len(families) <= 10 else "tab20"]
    for label, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=label,
                color=cmap(families.index(label.split(":")[0]) % cmap.N),
                linestyle="--" if "val" in label or "test" in label else "-")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"saved plot to {path}")
