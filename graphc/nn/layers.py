"""Layers: each creates its parameters when a model builds it and adds its part of the graph.

A layer is built once, by ``Sequential``, with the shape of one sample (no batch dimension)
and a numpy ``Generator`` for its initial weights; its ``forward`` can then be called any
number of times (a training graph, an evaluation graph, ...), all sharing its parameters.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .. import ops  # noqa: F401  (registers the ops)
from ..ir import Tensor
from ..ops import core as C
from ..ops import elementwise as E
from ..ops import nn as N
from . import activations

__all__ = ["Layer", "Dense", "Dropout", "BatchNorm", "Maxout", "Flatten", "Activation",
           "INITS", "LAYER_TYPES"]

Shape = tuple


# -- weight initializers: (rng, fan_in, fan_out, shape) -> float32 array ------------------------

def _he(rng, fan_in, fan_out, shape):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def _glorot(rng, fan_in, fan_out, shape):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def _lecun(rng, fan_in, fan_out, shape):
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)


def _normal(rng, fan_in, fan_out, shape):
    return rng.normal(0.0, 0.05, shape)


def _zeros(rng, fan_in, fan_out, shape):
    return np.zeros(shape)


#: initializer name -> function.  ``he``: N(0, 2/fan_in) (He et al. 2015, for ReLU);
#: ``glorot``: U(-sqrt(6/(fan_in+fan_out)), +...) (Glorot & Bengio 2010, Keras' default);
#: ``lecun``: N(0, 1/fan_in) (for SELU); ``normal``: N(0, 0.05^2); ``zeros``: all zero.
INITS: dict[str, Callable] = {"he": _he, "glorot": _glorot, "lecun": _lecun,
                              "normal": _normal, "zeros": _zeros}


def _check_init(init):
    if isinstance(init, str):
        key = init.strip().lower()
        if key not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {sorted(INITS)} or pass a "
                             f"function (rng, fan_in, fan_out, shape) -> array")
        return key
    if callable(init):
        return init
    raise TypeError(f"init must be a name or a function, got {init!r}")


def _positive_int(what, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


# -- the affine part shared by Dense and Maxout ------------------------------------------------

def _build_affine(layer, input_shape, rng, width: int) -> None:
    """Create the weights ``W`` (fan_in, width), which weight decay applies to, and the zero
    bias ``b`` (width,) of ``layer`` (a layer with ``use_bias`` and ``init``)."""
    if len(input_shape) != 1:
        raise ValueError(f"{type(layer).__name__}: expects inputs of one feature axis, got "
                         f"sample shape {input_shape}; put a Flatten() first")
    fan_in = input_shape[0]
    init = INITS[layer.init] if isinstance(layer.init, str) else layer.init
    W = np.asarray(init(rng, fan_in, width, (fan_in, width)))
    if W.shape != (fan_in, width) or W.dtype.kind not in "fiub":
        # a custom initializer's mistake surfaced later as a matmul ShapeError at the first
        # predict, a ComplexWarning, or numpy's "could not convert string to float"
        raise ValueError(f"{type(layer).__name__}: init {layer.init!r} must return real numbers "
                         f"of shape {(fan_in, width)}, got {W.dtype} of shape {W.shape}")
    layer._add("W", W, regularized=True)
    if layer.use_bias:
        layer._add("b", np.zeros(width))


def _affine(layer, x: Tensor) -> Tensor:
    z = C.matmul(x, layer._params["W"])
    return z + layer._params["b"] if layer.use_bias else z


def _maxout_units(z: Tensor, pieces: int) -> Tensor:
    """Goodfellow's maxout: unit j is the max of the j-th group of ``pieces`` consecutive
    values of the last axis."""
    return N.maxout(z, pieces, axis=-1)


def _check_pieces(activation, pieces):
    """Dense's ``pieces``: 2 by default for maxout, refused with any other activation."""
    if isinstance(activation, str) and activation == "maxout":
        return 2 if pieces is None else _positive_int("Dense: pieces", pieces)
    if pieces is not None:
        raise ValueError(f"Dense: pieces={pieces!r} applies to activation='maxout' only, got "
                         f"activation {activation!r}")
    return None


class Layer:
    """Base class.  Subclasses set ``kind`` (used in parameter names) and implement ``_build``
    (create parameters with ``self._add``, return the output shape) and ``forward``."""

    kind = "layer"

    def __init__(self):
        self.name: str | None = None
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self._params: dict[str, Tensor] = {}     # all of them, in creation order
        self._regularized: list[str] = []        # keys that weight decay applies to

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator, name: str) -> Shape:
        """Create the parameters for samples of ``input_shape``; returns the output shape."""
        if self.input_shape is not None:
            raise ValueError(f"layer {self.name} ({type(self).__name__}) is already part of a "
                             f"model; create a new layer for each model")
        self.name = name
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self._build(self.input_shape, rng))
        return self.output_shape

    def _build(self, input_shape: Shape, rng) -> Shape:
        return input_shape

    def unbuild(self) -> None:
        """Forget a build (the model it was for failed to build): parameters, name, shapes."""
        self.name = self.input_shape = self.output_shape = None
        self._params, self._regularized = {}, []

    def _add(self, key: str, value: np.ndarray, trainable=True, regularized=False) -> Tensor:
        p = C.parameter(np.asarray(value, dtype=np.float32), name=f"{self.name}_{key}",
                        trainable=trainable)
        self._params[key] = p
        if regularized:
            self._regularized.append(key)
        return p

    # -- the graph --------------------------------------------------------------------------
    def forward(self, x: Tensor, training: bool, seed: int) -> Tensor:
        """This layer's output for the batch ``x`` (``training`` selects dropout / batch-norm
        behaviour; ``seed`` seeds any randomness)."""
        raise NotImplementedError

    def forward_logits(self, x: Tensor, training: bool, seed: int):
        """``(output, logits)``: ``logits`` is the input of a final softmax / log-softmax /
        sigmoid (the stable losses use it), else ``None``."""
        return self.forward(x, training, seed), None

    @property
    def activation_name(self) -> str | None:
        """The registry name of the activation applied last, if any."""
        return None

    # -- parameters -------------------------------------------------------------------------
    @property
    def parameters(self) -> list[Tensor]:
        """Trainable parameters."""
        return [p for p in self._params.values() if p.trainable]

    @property
    def all_parameters(self) -> list[Tensor]:
        """All parameters (batch-norm running statistics included), in creation order."""
        return list(self._params.values())

    @property
    def regularized(self) -> list[Tensor]:
        """The weights (not biases, not batch-norm scales) that weight decay applies to."""
        return [self._params[k] for k in self._regularized]

    # -- saving -----------------------------------------------------------------------------
    def config(self) -> dict:
        """Constructor arguments as JSON-friendly values (``type(self)(**config())`` rebuilds
        the layer)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer ``activation(x @ W + b)``; ``W`` has shape (fan_in, units).

    ``activation``: a name from ``graphc.nn.activations.NAMES`` (``"relu"``, ``"softmax"``,
    ...), ``None`` (linear) or a function of a tensor (such a model cannot be saved).
    ``"prelu"`` learns one slope per unit (parameter ``alpha``, starting at 0.25 as PyTorch's
    ``PReLU``, without weight decay); ``"maxout"`` computes ``units * pieces`` values and keeps
    the max of each group of ``pieces`` consecutive ones (as ``Maxout``); ``pieces`` (default
    2) is only valid with ``"maxout"``.  ``init``: ``"he"`` (default), ``"glorot"``,
    ``"lecun"``, ``"normal"``, ``"zeros"`` or a function ``(rng, fan_in, fan_out, shape) ->
    array``; biases start at zero.
    """

    kind = "dense"

    def __init__(self, units: int, activation=None, use_bias: bool = True, init="he",
                 pieces: int | None = None):
        super().__init__()
        self.units = _positive_int("Dense: units", units)
        self.activation = activations.normalize(activation)
        self.pieces = _check_pieces(self.activation, pieces)
        self.use_bias = bool(use_bias)
        self.init = _check_init(init)

    def _build(self, input_shape, rng):
        _build_affine(self, input_shape, rng, self.units * (self.pieces or 1))
        if self.activation_name == "prelu":
            self._add("alpha", np.full(self.units, 0.25))
        if self.activation_name is None:  # a function may change the width (e.g. a maxout)
            out = self.activation(C.placeholder((None, self.units), name="activation_probe"))
            if not isinstance(out, Tensor) or len(out.shape) != 2 or out.shape[1] is None:
                raise ValueError(f"Dense: activation {self.activation!r} must map a batch of "
                                 f"shape (n, {self.units}) to a tensor of shape (n, k), got "
                                 f"{out!r}")
            return (out.shape[1],)
        return (self.units,)

    def preactivation(self, x: Tensor) -> Tensor:
        """``x @ W + b`` (``units * pieces`` wide for maxout)."""
        return _affine(self, x)

    def _activate(self, z: Tensor) -> Tensor:
        name = self.activation_name
        if name == "prelu":
            return E.prelu(z, self._params["alpha"])
        if name == "maxout":
            return _maxout_units(z, self.pieces)
        return activations.get(self.activation)(z)

    def forward_logits(self, x, training, seed):
        z = self.preactivation(x)
        out = self._activate(z)
        name = self.activation_name
        return out, (z if name in activations.LOGIT_ACTIVATIONS else None)

    def forward(self, x, training, seed):
        return self.forward_logits(x, training, seed)[0]

    @property
    def activation_name(self):
        return self.activation if isinstance(self.activation, str) else None

    def config(self):
        cfg = {"units": self.units, "activation": self.activation_name,
               "use_bias": self.use_bias,
               "init": self.init if isinstance(self.init, str) else None}
        if self.pieces is not None:  # only maxout has it: older saves and readers stay valid
            cfg["pieces"] = self.pieces
        return cfg


class Maxout(Layer):
    """Maxout units (Goodfellow et al. 2013): a dense layer to ``units * pieces`` values, then
    unit j is the max of the j-th group of ``pieces`` consecutive values."""

    kind = "maxout"

    def __init__(self, units: int, pieces: int, use_bias: bool = True, init="he"):
        super().__init__()
        self.units = _positive_int("Maxout: units", units)
        self.pieces = _positive_int("Maxout: pieces", pieces)
        self.use_bias = bool(use_bias)
        self.init = _check_init(init)

    def _build(self, input_shape, rng):
        _build_affine(self, input_shape, rng, self.units * self.pieces)
        return (self.units,)

    def forward(self, x, training, seed):
        return _maxout_units(_affine(self, x), self.pieces)

    def config(self):
        return {"units": self.units, "pieces": self.pieces, "use_bias": self.use_bias,
                "init": self.init if isinstance(self.init, str) else None}


class Dropout(Layer):
    """Inverted dropout of ``rate`` in training; the identity in evaluation / ``predict``."""

    kind = "dropout"

    def __init__(self, rate: float):
        super().__init__()
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1], got {rate}")
        self.rate = float(rate)

    def forward(self, x, training, seed):
        if not training or self.rate == 0.0:
            return x
        return N.dropout(x, self.rate, True, seed=seed)

    def config(self):
        return {"rate": self.rate}


class BatchNorm(Layer):
    """Batch normalization over the batch axis (Ioffe & Szegedy 2015), as PyTorch's
    ``BatchNorm1d``: trainable ``gamma`` (ones) and ``beta`` (zeros); the running mean and
    variance are ``trainable=False`` parameters updated by every training step and used in
    evaluation.  ``momentum`` is PyTorch's: ``running = (1 - momentum) * running + momentum *
    batch statistic`` (the variance unbiased), so Keras' ``momentum=0.99`` is ``0.01`` here;
    ``eps`` (default 1e-5, Keras' is 1e-3) is added to the variance.  ``fit`` refuses a training
    batch of one sample, as PyTorch does."""

    kind = "batch_norm"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum}")
        if not float(eps) > 0.0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps}")
        self.momentum, self.eps = float(momentum), float(eps)

    def _build(self, input_shape, rng):
        self._add("gamma", np.ones(input_shape))
        self._add("beta", np.zeros(input_shape))
        self._add("running_mean", np.zeros(input_shape), trainable=False)
        self._add("running_var", np.ones(input_shape), trainable=False)
        return input_shape

    def forward(self, x, training, seed):
        p = self._params
        return N.batch_norm(x, p["gamma"], p["beta"], p["running_mean"], p["running_var"],
                            bool(training), momentum=self.momentum, eps=self.eps)

    def config(self):
        return {"momentum": self.momentum, "eps": self.eps}


class Flatten(Layer):
    """Reshape each sample to one feature axis (e.g. (28, 28) images to 784 values)."""

    kind = "flatten"

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training, seed):
        return C.reshape(x, (-1, self.output_shape[0]))


class Activation(Layer):
    """An activation on its own (``Activation("softmax")`` after a linear ``Dense``)."""

    kind = "activation"

    def __init__(self, activation):
        super().__init__()
        self.activation = activations.normalize(activation)
        if self.activation_name in activations.LAYER_ACTIVATIONS:
            activations.get(self.activation)  # raises: only Dense applies it

    def forward_logits(self, x, training, seed):
        out = activations.get(self.activation)(x)
        return out, (x if self.activation_name in activations.LOGIT_ACTIVATIONS else None)

    def forward(self, x, training, seed):
        return self.forward_logits(x, training, seed)[0]

    @property
    def activation_name(self):
        return self.activation if isinstance(self.activation, str) else None

    def config(self):
        return {"activation": self.activation_name}


#: class name -> class, for loading saved models
LAYER_TYPES: dict[str, type] = {cls.__name__: cls for cls in
                                (Dense, Dropout, BatchNorm, Maxout, Flatten, Activation)}
