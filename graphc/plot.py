"""Plots of training runs (needs matplotlib: ``pip install graphc[plot]``).

Figures are drawn with matplotlib's Agg canvas directly, without ``pyplot``, so
no window is opened and the user's matplotlib backend is left untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["history"]

# (key, aliases, label) for each curve, per subplot.
_LOSS_CURVES = (("loss", (), "train"), ("val_loss", (), "validation"))
_ACC_CURVES = (
    ("accuracy", ("acc",), "train"),
    ("val_accuracy", ("val_acc",), "validation"),
)


def _require_matplotlib() -> Any:
    """Import matplotlib or raise an ImportError saying how to install it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "graphc.plot needs matplotlib: pip install graphc[plot] "
            "(or pip install matplotlib)"
        ) from exc
    return Figure, FigureCanvasAgg


def _curves(
    hist: Mapping[str, Sequence[float]], spec: tuple[tuple[str, tuple[str, ...], str], ...]
) -> list[tuple[str, list[float]]]:
    """The ``(label, values)`` pairs of ``spec`` present and non-empty in ``hist``."""
    found = []
    for key, aliases, label in spec:
        for name in (key, *aliases):
            values = hist.get(name)
            if values is None:
                continue
            try:
                if isinstance(values, (str, bytes)):
                    raise TypeError
                n = len(values)
            except TypeError:
                raise ValueError(f"history[{name!r}] must be a list of per-epoch values, "
                                 f"got {type(values).__name__}") from None
            if n > 0:
                found.append((label, [_number(name, v) for v in values]))
                break
    return found


def _number(name: str, v: Any) -> float:
    """A per-epoch value as a float; ``None`` (an epoch without it) is a gap (NaN)."""
    if v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"history[{name!r}] holds {v!r}, not a number") from None


_OTHER_FORMATS = {".svg", ".svgz", ".pdf", ".ps", ".eps", ".jpg", ".jpeg", ".tif", ".tiff",
                  ".webp", ".gif", ".bmp", ".pgf", ".raw", ".rgba"}


def history(
    history: Mapping[str, Sequence[float]] | Any,
    path: str | os.PathLike[str],
    title: str | None = None,
) -> str:
    """Write training curves to a PNG file.

    Args:
        history: per-epoch lists keyed ``loss`` and optionally ``val_loss``,
            ``accuracy`` (or ``acc``) and ``val_accuracy`` (or ``val_acc``). An
            object with a ``history`` dict attribute is accepted too. Other keys are
            ignored.
        path: the PNG file to write; missing parent directories are created.
        title: optional figure title.

    Returns:
        ``path``, as a string.

    Raises:
        ImportError: if matplotlib is not installed.
        ValueError: if ``history`` holds no loss or accuracy curve, a curve is not a list
            of numbers (``None`` entries are gaps), or ``path`` names another image format
            (``.svg``, ``.jpg``, ...).
    """
    out = os.fspath(path)
    suffix = os.path.splitext(out)[1].lower()
    if suffix in _OTHER_FORMATS:
        # the file is a PNG whatever its name: a curves.svg holding PNG bytes opens nowhere
        raise ValueError(f"graphc.plot.history writes PNG files; {out!r} asks for "
                         f"{suffix[1:].upper()} (name it .png)")
    inner = getattr(history, "history", None)
    if not isinstance(history, Mapping) and isinstance(inner, Mapping):
        history = inner
    if not isinstance(history, Mapping):
        raise ValueError(f"history must be a dict of per-epoch lists, got {type(history)}")
    losses = _curves(history, _LOSS_CURVES)
    accuracies = _curves(history, _ACC_CURVES)
    panels = [(name, curves) for name, curves in (("loss", losses), ("accuracy", accuracies))
              if curves]
    if not panels:
        raise ValueError(
            "history holds no curve to plot: expected 'loss', 'val_loss', 'accuracy' or "
            f"'val_accuracy', got keys {sorted(map(str, history))}"
        )

    Figure, FigureCanvasAgg = _require_matplotlib()
    fig = Figure(figsize=(5.0 * len(panels), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (ylabel, curves) in zip(axes, panels):
        for label, values in curves:
            epochs = range(1, len(values) + 1)
            ax.plot(epochs, values, marker="o" if len(values) <= 30 else None, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)

    parent = os.path.dirname(out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out
