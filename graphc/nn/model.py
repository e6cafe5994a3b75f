"""``Sequential``: a stack of layers, its graphs (training, evaluation, prediction) and their
compiled functions, cached per backend."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from .. import ops  # noqa: F401
from ..autodiff import grad
from ..compile import compile as gc_compile
from ..errors import BackendUnavailable
from ..ir import Tensor
from ..ops import core as C
from ..ops import nn as N
from . import losses as L
from .layers import Layer

__all__ = ["Sequential", "compile_with_fallback"]


def compile_with_fallback(inputs, outputs, updates=None, backend="c"):
    """``gc.compile``; when ``backend="c"`` cannot run here (no C compiler, ...), warn once and
    use the numpy backend.  Other backends raise ``BackendUnavailable`` as usual."""
    try:
        return gc_compile(inputs, outputs, updates, backend=backend)
    except BackendUnavailable as e:
        if backend != "c":
            raise
        warnings.warn(f"backend 'c' is unavailable ({e}); using the numpy backend",
                      RuntimeWarning, stacklevel=3)
        return gc_compile(inputs, outputs, updates, backend="numpy")


def require_finite(what: str, a: np.ndarray) -> None:
    """ValueError naming ``what`` and the first bad row when ``a`` holds NaN or infinity:
    training on such data silently turns every weight into NaN."""
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{what} contains NaN or infinite values (first at index "
                         f"{tuple(int(i) for i in bad)}); clean or impute the data first")


def check_weight_decay(weight_decay) -> float:
    """``weight_decay`` as a float >= 0; ValueError otherwise (NaN included: it would pass a
    ``< 0`` test and then be silently dropped from the gradients)."""
    wd = float(weight_decay)
    if not 0.0 <= wd < float("inf"):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    return wd


def bucket_size(n: int, batch_size: int) -> int:
    """The batch a chunk of ``n`` <= ``batch_size`` samples is computed at: the next power of
    two, at most ``batch_size``.  A compiled backend builds one module per input shape, so a
    server predicting 1, 2, ..., 300 samples compiled hundreds of them; now at most
    log2(batch_size) + 2 per model and backend."""
    return min(1 << (int(n) - 1).bit_length(), int(batch_size))


def pad_rows(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with copies of its last row appended up to ``size`` rows (real data: a padding of
    zeros could leave the domain of e.g. a log, and its NaN would be harmless but noisy)."""
    if len(a) == size:
        return a
    return np.concatenate([a, np.broadcast_to(a[-1:], (size - len(a),) + a.shape[1:])])


def exact_chunks(n: int, batch_size: int):
    """``(start, stop)`` of chunks of ``batch_size`` samples, then the rest in bucket sizes
    (its binary digits, largest first): every chunk has a ``bucket_size`` and no padding, so a
    mean over samples (any loss, user functions included) is exact."""
    start = 0
    while n - start >= batch_size:
        yield start, start + batch_size
        start += batch_size
    rest = n - start
    for bit in reversed(range(rest.bit_length())):
        if rest >> bit & 1:
            yield start, start + (1 << bit)
            start += 1 << bit


def layer_seed(seed: int, index: int) -> int:
    """The dropout seed of layer ``index`` for a run seeded with ``seed`` (independent streams)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class Sequential:
    """A stack of layers applied in order to samples of shape ``input_dim`` (an int, or a tuple
    for e.g. images followed by ``Flatten()``).

    The layers' weights are initialized when the model is built, from
    ``np.random.default_rng(seed)``: the same layers and seed give the same weights.
    """

    def __init__(self, layers: Sequence[Layer], input_dim, seed: int = 0):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: {layer!r} is not a graphc.nn layer")
        try:
            shape = (input_dim,) if isinstance(input_dim, (int, np.integer)) \
                else tuple(input_dim)
        except TypeError:  # None, 4.0: "'NoneType' object is not iterable" said nothing
            shape = ()
        if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                            for d in shape):
            raise ValueError(f"Sequential: input_dim must be a positive int or a tuple of them, "
                             f"got {input_dim!r}")
        self.input_shape = tuple(int(d) for d in shape)
        self.seed = int(seed)
        self.layers = layers
        self.output_shape = self._build_layers(shape)
        self._train_cache: dict = {}   # one entry: the latest training step, per backend
        self._eval_cache: dict = {}    # loss key -> (graph, {backend: fn})
        self._predict_cache: dict = {}
        self.best_epoch: int | None = None
        # the loss of the last ``fit``: what ``evaluate(X, y)`` computes when given no loss
        self.loss = None

    def __getstate__(self):
        # copy.deepcopy(model) (a snapshot, as torch users keep) and pickle: without the
        # compiled functions fit / evaluate / predict cached (machine code and device buffers
        # cannot be copied); the copy compiles its own
        state = dict(self.__dict__)
        state.update(_train_cache={}, _eval_cache={}, _predict_cache={})
        # nor the optimizers fit made from a name: their state is keyed by the ids of these
        # parameters, which the copy's do not have (and a new process may reuse for others)
        state.pop("_optimizers", None)
        return state

    def _build_layers(self, shape) -> tuple:
        """Build every layer in turn; if one fails, the layers built here are reset, so that
        they can go into a corrected model (else they would count as part of this one)."""
        rng = np.random.default_rng(self.seed)
        counts: dict[str, int] = {}
        built = []
        try:
            for layer in self.layers:
                i = counts.get(layer.kind, 0)
                counts[layer.kind] = i + 1
                if layer.input_shape is None:  # not another model's layer
                    built.append(layer)
                shape = layer.build(shape, rng, f"{layer.kind}_{i}")
        except BaseException:
            for layer in built:
                layer.unbuild()
            raise
        return tuple(shape)

    # -- parameters -------------------------------------------------------------------------
    @property
    def parameters(self) -> list[Tensor]:
        """The trainable parameters, layer by layer (what the optimizer updates).  Batch-norm
        running statistics are parameters too, ``trainable=False``: ``all_parameters`` lists
        them with these, and ``get_weights`` / ``set_weights`` / ``save`` cover all of them,
        as Keras' ``get_weights`` includes the non-trainable moving mean and variance."""
        return [p for layer in self.layers for p in layer.parameters]

    @property
    def all_parameters(self) -> list[Tensor]:
        """Every parameter, batch-norm running statistics included: what ``get_weights``,
        ``set_weights`` and ``save`` cover."""
        return [p for layer in self.layers for p in layer.all_parameters]

    @property
    def regularized(self) -> list[Tensor]:
        """The weight matrices that ``weight_decay`` applies to (no biases, no batch-norm)."""
        return [p for layer in self.layers for p in layer.regularized]

    def count_params(self) -> int:
        """Number of trainable values (``model.parameters``; batch-norm running statistics
        not counted), as Keras' ``count_params``."""
        return int(sum(np.prod(p.shape) for p in self.parameters))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the values of ``all_parameters`` (trainable ones and running statistics,
        in layer order, as Keras)."""
        return [p.value for p in self.all_parameters]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set ``all_parameters`` from a list like ``get_weights()`` returns (the same count and
        order: batch-norm running statistics included); ValueError (and nothing changed) if the
        count or a shape differs or an array is not numeric.  Values are cast to the
        parameters' float32."""
        params = self.all_parameters
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"set_weights: expected {len(params)} arrays "
                             f"({[p.name for p in params]}), got {len(weights)}")
        arrays = []
        for p, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != tuple(p.shape):
                raise ValueError(f"set_weights: {p.name} has shape {tuple(p.shape)}, got "
                                 f"{w.shape}")
            if w.dtype.kind not in "fiub":
                raise ValueError(f"set_weights: {p.name} needs numbers, got dtype {w.dtype}")
            arrays.append(w)
        for p, w in zip(params, arrays):
            p.value = w

    # -- graphs -----------------------------------------------------------------------------
    @property
    def last_activation(self) -> str | None:
        return self.layers[-1].activation_name

    def forward(self, x: Tensor, training: bool = False, seed: int = 0):
        """``(output, logits)`` of the model on the batch ``x``: ``logits`` is the input of a
        final softmax / log-softmax / sigmoid, else ``None``.  ``training=True`` turns dropout
        on and makes batch norm use (and update) batch statistics."""
        for i, layer in enumerate(self.layers[:-1]):
            x = layer.forward(x, training, layer_seed(seed, i))
        return self.layers[-1].forward_logits(x, training, layer_seed(seed, len(self.layers) - 1))

    def __call__(self, x: Tensor, training: bool = False, seed: int = 0) -> Tensor:
        """The model's output tensor for the symbolic batch ``x``."""
        return self.forward(x, training, seed)[0]

    def _placeholders(self, spec, y=None):
        x = C.placeholder((None,) + self.input_shape, "float32", name="x")
        shape, dtype = L.target_spec(spec, self.output_shape, y)
        t = C.placeholder((None,) + shape, dtype, name="y")
        return x, t

    def graph(self, loss="cross_entropy", weight_decay: float = 0.0, training: bool = True,
              seed: int = 0, y=None) -> dict:
        """The model's training graph, for export (``graphc viz``) or custom training loops.

        Returns a dict with
        ``inputs`` ``[x, y]`` (placeholders: the batch ``(None,) + input_dim`` float32 and the
        targets, int64 labels ``(None,)`` for cross-entropy, else float32 like the output),
        ``output`` (the last layer's output), ``data_loss`` (the loss without penalty),
        ``loss`` (``data_loss + weight_decay / 2 * sum of squared weights``), ``correct``
        (number of correctly classified samples, or ``None`` for non-classification losses),
        ``params`` (the trainable parameters) and ``grads`` (``gc.grad(loss, params)``).
        ``y`` (sample targets) only serves to type the target of a custom loss function.

        Compile a training step with
        ``gc.compile(g["inputs"], [g["loss"]], opt.updates(g["params"], g["grads"]))``.
        """
        spec = loss if isinstance(loss, L.LossSpec) else L.resolve(loss, self.last_activation)
        x, t = self._placeholders(spec, y)
        out, logits = self.forward(x, training=training, seed=seed)
        data_loss = spec.fn(out, logits, t)
        if not isinstance(data_loss, Tensor) or data_loss.shape != ():
            raise ValueError(f"loss {loss!r} must give a scalar tensor, got {data_loss!r}")
        total = data_loss
        weight_decay = check_weight_decay(weight_decay)
        if weight_decay:
            total = data_loss + N.l2_penalty(self.regularized) * (0.5 * weight_decay)
        params = self.parameters
        correct = spec.correct(out, logits, t) if spec.correct else None
        return {"inputs": [x, t], "output": out, "data_loss": data_loss, "loss": total,
                "correct": correct, "params": params, "grads": grad(total, params),
                "spec": spec}

    def training_graph(self, loss="cross_entropy", weight_decay: float = 0.0):
        """``(inputs, outputs, grads)`` of the training graph: ``inputs`` ``[x, y]``,
        ``outputs`` ``[loss]`` and ``grads`` a list of ``(parameter, gradient)``."""
        g = self.graph(loss, weight_decay)
        return g["inputs"], [g["loss"]], list(zip(g["params"], g["grads"]))

    # -- compiled functions -----------------------------------------------------------------
    def _eval_fn(self, loss, y, backend):
        spec = L.resolve(loss, self.last_activation)
        key = (spec.key, L.target_spec(spec, self.output_shape, y))
        if key not in self._eval_cache:
            spec_ = L.resolve(loss, self.last_activation)
            x, t = self._placeholders(spec_, y)
            out, logits = self.forward(x, training=False)
            outs = [spec_.fn(out, logits, t)]
            if spec_.correct:
                outs.append(spec_.correct(out, logits, t))
            self._eval_cache[key] = ([x, t], outs, loss, {})
        inputs, outs, _, fns = self._eval_cache[key]
        if backend not in fns:
            fns[backend] = compile_with_fallback(inputs, outs, None, backend)
        return fns[backend], spec

    def _predict_fn(self, backend):
        if "graph" not in self._predict_cache:
            x = C.placeholder((None,) + self.input_shape, "float32", name="x")
            self._predict_cache["graph"] = (x, self.forward(x, training=False)[0])
        x, out = self._predict_cache["graph"]
        if backend not in self._predict_cache:
            self._predict_cache[backend] = compile_with_fallback([x], out, None, backend)
        return self._predict_cache[backend]

    def _check_X(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.shape[1:] != self.input_shape:
            raise ValueError(f"expected samples of shape {self.input_shape} (X of shape "
                             f"(n,) + {self.input_shape}), got X of shape {X.shape}")
        if X.dtype.kind not in "fiub":
            raise ValueError(f"X must be numeric, got dtype {X.dtype}")
        return X.astype(np.float32, copy=False)

    # -- inference ------------------------------------------------------------------------
    def predict(self, X, batch_size: int = 256, backend: str = "c") -> np.ndarray:
        """The last layer's output for every sample of ``X`` (evaluation mode: no dropout,
        batch norm with running statistics), computed ``batch_size`` samples at a time.  A last
        partial chunk is padded to a power of two (``bucket_size``) and its output sliced:
        samples are independent in evaluation mode, and a compiled backend then builds at most
        log2(batch_size) + 2 modules whatever the request sizes."""
        X = np.asarray(X)
        # one sample without the batch axis (shape input_dim): return its output alone
        single = X.shape == self.input_shape
        X = self._check_X(X[None] if single else X)
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        f = self._predict_fn(backend)
        if single:
            return np.asarray(f(X))[0]
        if len(X) == 0:
            return np.zeros((0,) + self.output_shape, np.float32)
        outs = []
        for i in range(0, len(X), batch_size):
            chunk = X[i:i + batch_size]
            outs.append(np.asarray(f(pad_rows(chunk, bucket_size(len(chunk), batch_size))))
                        [:len(chunk)])
        return np.concatenate(outs)

    def evaluate(self, X, y, loss=None, batch_size: int = 256,
                 backend: str = "c") -> dict:
        """``{"loss": mean loss, "accuracy": fraction correct}`` over ``(X, y)`` in evaluation
        mode (``accuracy`` only for classification losses).  ``loss`` defaults to the one the
        last ``fit`` trained with, else ``"cross_entropy"``.  Computed ``batch_size`` samples
        at a time, the rest in power-of-two chunks (``exact_chunks``: at most log2(batch_size)
        + 2 compiled modules, and no padded sample in any mean)."""
        if loss is None:
            loss = getattr(self, "loss", None) or "cross_entropy"
        X = self._check_X(X)
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        f, spec = self._eval_fn(loss, y, backend)
        y = L.prepare_targets(spec, self.output_shape, y)
        if len(X) != len(y):
            raise ValueError(f"X and y have different lengths: {len(X)} != {len(y)}")
        if len(X) == 0:
            raise ValueError("evaluate: no samples")
        require_finite("evaluate: X", X)
        require_finite("evaluate: y", y)
        total, correct = 0.0, 0.0
        for start, stop in exact_chunks(len(X), batch_size):
            outs = f(X[start:stop], y[start:stop])
            total += float(outs[0]) * (stop - start)  # (the loss: a mean over the chunk)
            if spec.correct:
                correct += float(outs[1])
        result = {"loss": total / len(X)}
        if spec.correct:
            result["accuracy"] = correct / len(X)
        return result

    # -- training, saving (in their own modules) --------------------------------------------
    def fit(self, X, y, loss="cross_entropy", optimizer=None, epochs: int = 5,
            batch_size: int = 128, backend: str = "c", validation_data=None,
            early_stopping=None, weight_decay: float = 0.0, seed: int = 0,
            progress: bool = True, validation_split: float = 0.0, shuffle: bool = True,
            callback=None, lr_schedule=None) -> dict:
        """Train the model; see ``graphc.nn.training.fit`` (same arguments) for the details."""
        from .training import fit
        return fit(self, X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                   batch_size=batch_size, backend=backend, validation_data=validation_data,
                   validation_split=validation_split, early_stopping=early_stopping,
                   weight_decay=weight_decay, seed=seed, progress=progress, shuffle=shuffle,
                   callback=callback, lr_schedule=lr_schedule)

    def save(self, path) -> str:
        """Save architecture and weights into the directory ``path``; see
        ``graphc.nn.saving.save``."""
        from .saving import save
        return save(self, path)

    def config(self) -> dict:
        """The architecture as JSON-friendly data (``graphc.nn.saving`` writes it)."""
        return {"input_dim": list(self.input_shape), "seed": self.seed,
                "layers": [{"type": type(layer).__name__, "config": layer.config()}
                           for layer in self.layers]}

    def summary(self) -> str:
        """A table of the layers, their output shapes and parameter counts."""
        rows = [("layer", "output shape", "params")]
        for layer in self.layers:
            n = sum(int(np.prod(p.shape)) for p in layer.all_parameters)
            rows.append((f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                         str(n)))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
        lines.append(f"trainable parameters: {self.count_params()}")
        return "\n".join(lines)

    def __repr__(self):
        dim = self.input_shape if len(self.input_shape) > 1 else self.input_shape[0]
        return f"Sequential([{', '.join(map(repr, self.layers))}], input_dim={dim})"
