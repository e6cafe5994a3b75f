"""Activation functions by name, for ``Dense(units, activation=...)`` and saved models."""
from __future__ import annotations

from typing import Callable

from .. import ops  # noqa: F401  (registers the ops)
from ..ir import Tensor
from ..ops import elementwise as E
from ..ops import nn as N


def _identity(t: Tensor) -> Tensor:
    return t


#: name -> function of a tensor.  Every name here can be saved with ``model.save``.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": _identity,
    "relu": E.relu,
    "tanh": E.tanh,
    "sigmoid": E.sigmoid,
    "softmax": lambda t: N.softmax(t, axis=-1),
    "log_softmax": lambda t: N.log_softmax(t, axis=-1),
    "leaky_relu": lambda t: E.leaky_relu(t, alpha=0.01),
    "elu": lambda t: E.elu(t, alpha=1.0),
    "selu": E.selu,
    "softplus": E.softplus,
    "hard_tanh": E.hard_tanh,
    "softsign": E.softsign,
    "silu": E.silu,
    "swish": E.silu,
    "mish": E.mish,
    "gelu": lambda t: E.gelu(t, approximate="none"),
    "gelu_tanh": lambda t: E.gelu(t, approximate="tanh"),
    "step": E.step,
}

#: activations whose input is the "logits" a stable loss can use directly
#: (cross-entropy on the pre-softmax values, BCE-with-logits on the pre-sigmoid values)
LOGIT_ACTIVATIONS = {"softmax": "cross_entropy", "log_softmax": "cross_entropy",
                     "sigmoid": "binary_cross_entropy"}

#: activations no function of a tensor alone can give, applied by ``Dense`` itself: ``prelu``
#: needs its learned slopes (a parameter per unit), ``maxout`` changes the layer's width
LAYER_ACTIVATIONS = ("maxout", "prelu")

#: every name ``Dense(units, activation=...)`` accepts
NAMES = tuple(sorted([*ACTIVATIONS, *LAYER_ACTIVATIONS]))


#: graphc's own activation functions -> their names: ``Dense(10, activation=gc.softmax)`` is
#: ``Dense(10, activation="softmax")`` (as Keras serializes ``tf.nn.relu`` by name), so that it
#: can be saved and its losses take the logits (a function passed as such was an opaque one: a
#: double softmax under "cross_entropy", "cannot save").  Only functions whose defaults are the
#: name's parameters (softmax over the last axis, leaky_relu 0.01, elu 1.0, exact gelu).
FUNCTION_NAMES: dict[Callable, str] = {
    N.softmax: "softmax", N.log_softmax: "log_softmax", E.leaky_relu: "leaky_relu",
    E.elu: "elu", E.gelu: "gelu"}
for _name, _fn in ACTIVATIONS.items():
    if _fn.__name__ != "<lambda>" and _fn is not _identity:
        FUNCTION_NAMES.setdefault(_fn, _name)  # silu before its alias swish


def normalize(activation) -> str | Callable[[Tensor], Tensor]:
    """A name of ``NAMES`` (``None`` becomes ``"linear"``; one of graphc's activation functions
    its name, see ``FUNCTION_NAMES``) or the callable itself; ValueError for an unknown name."""
    if activation is None:
        return "linear"
    try:
        if activation in FUNCTION_NAMES:
            return FUNCTION_NAMES[activation]
    except TypeError:  # unhashable callable
        pass
    if isinstance(activation, str):
        key = activation.strip().lower().replace("-", "_")
        if key not in NAMES:
            raise ValueError(f"unknown activation {activation!r}; choose one of {list(NAMES)} "
                             f"or pass a function of a tensor")
        return key
    if callable(activation):
        return activation
    raise TypeError(f"activation must be a name, a function or None, got {activation!r}")


def get(activation) -> Callable[[Tensor], Tensor]:
    """The function for ``activation`` (a name, a callable or None); ValueError for the
    ``LAYER_ACTIVATIONS``, which only ``Dense`` can apply."""
    act = normalize(activation)
    if isinstance(act, str) and act in LAYER_ACTIVATIONS:
        raise ValueError(f"activation {act!r} has parameters or a width of its own: use "
                         f"Dense(units, activation={act!r})")
    return ACTIVATIONS[act] if isinstance(act, str) else act
