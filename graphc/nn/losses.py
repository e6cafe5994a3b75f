"""Training losses by name, with the accuracy that goes with them.

A loss is resolved against a model: with ``"cross_entropy"`` after a final softmax (or
log-softmax) the loss is computed on the pre-softmax logits, and with
``"binary_cross_entropy"`` after a final sigmoid on the pre-sigmoid logits (the stable
``binary_cross_entropy_with_logits``), so ``Dense(10, "softmax")`` + ``"cross_entropy"`` (the
Keras "sparse categorical cross-entropy") trains exactly like ``Dense(10)`` + cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import ops  # noqa: F401
from ..ir import Tensor
from ..ops import core as C
from ..ops import elementwise as E
from ..ops import nn as N
from .activations import LOGIT_ACTIVATIONS

NAMES = ("cross_entropy", "mse", "binary_cross_entropy", "binary_cross_entropy_with_logits")
#: named activations whose outputs are probabilities (what ``binary_cross_entropy`` takes)
PROBABILITY_ACTIVATIONS = ("sigmoid", "softmax", "step")
CLASSIFICATION = ("cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits")


@dataclass(frozen=True)
class LossSpec:
    """A loss resolved for one model: how to build it and its accuracy from the model's
    ``(output, logits)`` and the target placeholder."""

    name: str | None                       # None for a user function
    fn: Callable                           # (output, logits, target) -> scalar tensor
    correct: Callable | None               # (output, logits, target) -> scalar count, or None
    key: object                            # hashable identity (for caches)

    @property
    def classification(self) -> bool:
        return self.correct is not None


def _argmax_correct(scores: Tensor, labels: Tensor) -> Tensor:
    """How many rows have their first maximum at ``labels`` (numpy argmax semantics, ties
    included: all-equal rows count as class 0), as a float32 scalar."""
    f32 = "float32"
    classes = scores.shape[1]
    mx = C.broadcast_like(C.max(scores, axis=1, keepdims=True), scores)
    is_max = E.sub(1.0, E.cast(E.less(scores, mx), f32))                     # (N, C)
    at_label = N.one_hot(labels, classes, f32)                              # (N, C)
    before = E.cast(E.less(C.constant(np.arange(classes, dtype=np.int64)),
                           C.expand_dims(labels, -1)), f32)                 # j < label
    label_is_max = C.sum(E.mul(is_max, at_label), axis=1)
    earlier_max = C.sum(E.mul(is_max, before), axis=1)
    return C.sum(E.mul(label_is_max, E.cast(E.less(earlier_max, 0.5), f32)))


def _binary_correct(scores: Tensor, target: Tensor, threshold: float) -> Tensor:
    """The samples' fractions of correctly thresholded outputs, summed (as a count of samples:
    with several outputs per sample, accuracy = this / samples is the mean over all outputs, as
    Keras' binary_accuracy; counting every output made it exceed 1)."""
    pred = E.greater(scores, threshold)
    truth = E.greater(target, 0.5)
    hits = C.sum(E.cast(E.equal(E.cast(pred, "float32"), E.cast(truth, "float32")), "float32"))
    dims = tuple(scores.shape[1:])
    if None in dims:  # sample shape known at run time only
        return E.div(hits, C.size_of(scores, tuple(range(1, len(scores.shape))), "float32"))
    per_sample = int(np.prod(dims)) if dims else 1
    return hits if per_sample == 1 else E.div(hits, float(per_sample))


def resolve(loss, last_activation: str | None) -> LossSpec:
    """The ``LossSpec`` of ``loss`` (a name in ``NAMES`` or a function ``(pred, target) ->
    scalar``) for a model whose last layer applies ``last_activation``."""
    if callable(loss) and not isinstance(loss, str):
        return LossSpec(None, lambda out, logits, t: loss(out, t), None, ("fn", id(loss)))
    if not isinstance(loss, str) or loss not in NAMES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {list(NAMES)} or pass a "
                         f"function (prediction, target) -> scalar tensor")
    if loss == "cross_entropy":
        # the logits stand in for the output after a final softmax / log-softmax only; after a
        # final sigmoid (whose logits serve the binary losses) the loss is taken on the output,
        # as PyTorch's cross_entropy(sigmoid(z), labels)
        on_logits = LOGIT_ACTIVATIONS.get(last_activation) == "cross_entropy"

        def scores(out, logits):
            return logits if on_logits and logits is not None else out

        def fn(out, logits, t):
            return N.cross_entropy(scores(out, logits), t)

        def correct(out, logits, t):
            return _argmax_correct(scores(out, logits), t)
        return LossSpec(loss, fn, correct, loss)
    if loss == "mse":
        return LossSpec(loss, lambda out, logits, t: N.mse(out, t), None, loss)
    if loss == "binary_cross_entropy":
        if isinstance(last_activation, str) and last_activation not in PROBABILITY_ACTIVATIONS:
            # log of a negative output: NaN losses and weights without any message (PyTorch's
            # binary_cross_entropy raises on inputs outside [0, 1]; Keras clips them)
            raise ValueError(f"binary_cross_entropy needs probabilities in [0, 1], but the "
                             f"last layer's activation {last_activation!r} can give values "
                             f"outside; end with a sigmoid, or use "
                             f"loss='binary_cross_entropy_with_logits' on the raw outputs")

        def fn(out, logits, t):
            if logits is not None and last_activation == "sigmoid":
                return N.binary_cross_entropy_with_logits(logits, t)
            return N.binary_cross_entropy(out, t)
        return LossSpec(loss, fn, lambda out, logits, t: _binary_correct(out, t, 0.5), loss)
    return LossSpec(loss, lambda out, logits, t: N.binary_cross_entropy_with_logits(out, t),
                    lambda out, logits, t: _binary_correct(out, t, 0.0), loss)


def target_spec(spec: LossSpec, output_shape: tuple, y=None) -> tuple[tuple, str]:
    """``(shape, dtype)`` of the target placeholder (shapes without the batch axis)."""
    if spec.name == "cross_entropy":
        return (), "int64"
    if spec.name is not None:
        return tuple(output_shape), "float32"
    if y is None:
        return tuple(output_shape), "float32"
    y = np.asarray(y)
    return tuple(y.shape[1:]), ("int64" if y.dtype.kind in "iub" else "float32")


def prepare_targets(spec: LossSpec, output_shape: tuple, y) -> np.ndarray:
    """``y`` checked and converted for the target placeholder; ValueError if it cannot fit."""
    y = np.asarray(y)
    if spec.name == "cross_entropy":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # a column of labels (Keras' sparse targets (n, 1)) is still labels
        if y.ndim != 1:
            raise ValueError(f"cross_entropy: expects integer class labels of shape (n,), got "
                             f"shape {y.shape} (one-hot targets? pass y.argmax(1))")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise ValueError("cross_entropy: labels must be integers")
        elif y.dtype.kind not in "iub":
            raise ValueError(f"cross_entropy: labels must be integers, got {y.dtype}")
        y = y.astype(np.int64)
        classes = output_shape[0] if output_shape else None
        if y.size and (y.min() < 0 or (classes is not None and y.max() >= classes)):
            raise ValueError(f"cross_entropy: labels must be in [0, {classes}), got range "
                             f"[{y.min()}, {y.max()}]")
        return y
    if spec.name is None:
        return y
    if y.dtype.kind not in "fiub":
        # strings ('0', '1') were parsed as numbers, complex values lost their imaginary part
        # (a warning only), objects (None) became NaN: refused as X is, naming the loss
        raise ValueError(f"{spec.name}: targets must be numbers, got dtype {y.dtype}")
    want = tuple(output_shape)
    if y.shape[1:] != want:
        if y.ndim == 1 and want == (1,):
            y = y.reshape(-1, 1)
        else:
            raise ValueError(f"{spec.name}: targets of shape {y.shape} do not match the "
                             f"model's output shape (n,) + {want}")
    y = y.astype(np.float32, copy=False)
    if spec.name.startswith("binary_cross_entropy") and y.size:
        # a target outside [0, 1] is no probability: the loss would be meaningless (negative,
        # unbounded below) and training would diverge without any error
        finite = y[np.isfinite(y)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError(f"{spec.name}: targets must be in [0, 1], got range "
                             f"[{finite.min()}, {finite.max()}]")
    return y
