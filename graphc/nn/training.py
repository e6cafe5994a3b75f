"""``Sequential.fit``: one compiled training step (forward, backward, update), called once per
mini-batch from a Python loop; early stopping; progress bars."""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from .. import data as gdata
from .. import optim
from ..ir import Tensor, toposort
from ..ops.core import parameter
from . import losses as L
from .model import check_weight_decay, compile_with_fallback, require_finite


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` (its magnitude, as
    Keras) for ``patience`` epochs; with ``restore_best`` the model gets the weights of its best
    epoch back (``get_weights()``: batch-norm running statistics included, optimizer state
    not), also when the epochs run out without stopping early."""

    def __init__(self, patience: int = 5, restore_best: bool = True, monitor: str | None = None,
                 min_delta: float = 0.0):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) \
                or patience < 0:
            raise ValueError(f"early_stopping: patience must be an int >= 0, got {patience!r}")
        self.patience = int(patience)
        self.restore_best = bool(restore_best)
        self.monitor = monitor          # as given: None picks a default per fit
        self.active = monitor or "loss"  # the metric of the current fit
        # the size of a change that counts as an improvement, whichever way is better: a
        # negative one is taken by its magnitude, as Keras' EarlyStopping does (as given it
        # made every worse epoch an "improvement", then restored the worst weights)
        min_delta = float(min_delta)
        if not abs(min_delta) < float("inf"):
            raise ValueError(f"early_stopping: min_delta must be a finite number, got "
                             f"{min_delta!r}")
        self.min_delta = abs(min_delta)
        self.reset()

    def reset(self) -> None:
        """Forget the previous run: a stopper given to several ``fit`` calls (or models) must
        neither stop early nor restore weights because of an earlier one."""
        self.best = None
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0

    @classmethod
    def from_arg(cls, arg, has_validation: bool, metrics=None):
        """The stopper for one ``fit`` (reset), checked against the ``metrics`` it will log
        before any training step changes the model."""
        if arg is None or arg is False:
            return None
        if arg is True:
            # "early stopping on", with the default settings (True must not reach the int
            # patience branch: a bool is no patience)
            arg = {}
        if isinstance(arg, EarlyStopping):
            es = arg
        elif isinstance(arg, dict):
            unknown = set(arg) - {"patience", "restore_best", "monitor", "min_delta"}
            if unknown:
                raise ValueError(f"early_stopping: unknown option(s) {sorted(unknown)}")
            es = cls(**arg)
        else:
            es = cls(patience=arg)
        es.reset()
        es.active = es.monitor or ("val_loss" if has_validation else "loss")
        if es.active.startswith("val_") and not has_validation:
            raise ValueError(f"early_stopping monitors {es.active!r} but there is no "
                             f"validation data (give validation_data or validation_split)")
        if metrics is not None and es.active not in metrics:
            raise ValueError(f"early_stopping: {es.active!r} is not among the metrics "
                             f"{sorted(metrics)}")
        return es

    def update(self, epoch: int, logs: dict, model) -> bool:
        """Record ``logs`` of ``epoch``; True when training should stop."""
        if self.active not in logs:
            raise ValueError(f"early_stopping: {self.active!r} is not among the metrics "
                             f"{sorted(logs)}")
        value = logs[self.active]
        better_is_higher = "acc" in self.active
        score = value if better_is_higher else -value
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best:
                self.best_weights = model.get_weights()
            return False
        self.wait += 1
        return self.wait >= self.patience


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr,
                dynamic_ncols=False)


def _empty_history(classification: bool, validation: bool) -> dict[str, list[float]]:
    keys = ["loss"] + (["accuracy"] if classification else [])
    if validation:
        keys += ["val_loss"] + (["val_accuracy"] if classification else [])
    return {k: [] for k in keys + ["time"]}


def _train_step(model, spec, y, optimizer, weight_decay, seed, backend):
    """The compiled training step for these settings, from the model's cache."""
    key = (id(optimizer), tuple(sorted(optimizer.config().items())), spec.key,
           L.target_spec(spec, model.output_shape, y), float(weight_decay), int(seed))
    entry = model._train_cache.get("entry")
    if entry is None or entry["key"] != key:
        g = model.graph(spec, weight_decay=weight_decay, training=True, seed=seed,
                        y=y)
        outputs = [g["data_loss"]] + ([g["correct"]] if g["correct"] is not None else [])
        updates = optimizer.updates(g["params"], g["grads"])
        # keep the optimizer and the loss (a user function's key is its id()) alive with the
        # entry so that their id() cannot be reused by another one
        entry = {"key": key, "inputs": g["inputs"], "outputs": outputs, "updates": updates,
                 "optimizer": optimizer, "spec": spec, "fns": {}}
        model._train_cache["entry"] = entry
    if backend not in entry["fns"]:
        entry["fns"][backend] = compile_with_fallback(entry["inputs"], entry["outputs"],
                                                      entry["updates"], backend)
    return entry["fns"][backend]


def _schedulable_lr(optimizer, lr_schedule) -> None:
    """Give ``optimizer`` a learning-rate parameter ``lr_schedule`` can set (before the step is
    built, so that the step reads it)."""
    if not callable(lr_schedule):
        raise TypeError(f"lr_schedule must be a function of the epoch, got {lr_schedule!r}")
    if not isinstance(optimizer.lr, Tensor):
        optimizer.lr = parameter(np.float32(optimizer.lr), name="lr", trainable=False)
    elif optimizer.lr.op != "parameter":
        raise ValueError(f"lr_schedule: the optimizer's lr is the expression {optimizer.lr.name}; "
                         f"give it a number or a trainable=False parameter")


def _set_scheduled_lr(optimizer, lr_schedule, epoch: int) -> float:
    rate = lr_schedule(epoch)
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"lr_schedule({epoch}) returned {rate!r}, not a number") from None
    if not 0.0 <= rate < float("inf"):
        raise ValueError(f"lr_schedule({epoch}) returned {rate}: a learning rate must be finite "
                         f"and >= 0")
    optimizer.lr.value = np.asarray(rate, dtype=optimizer.lr.dtype)
    return rate


def fit(model, X, y, loss="cross_entropy", optimizer=None, epochs: int = 5,
        batch_size: int = 128, backend: str = "c", validation_data=None,
        early_stopping=None, weight_decay: float = 0.0, seed: int = 0,
        progress: bool = True, validation_split: float = 0.0, shuffle: bool = True,
        callback=None, lr_schedule=None) -> dict:
    """Train ``model`` on ``(X, y)`` with mini-batch gradient descent.

    One training step (forward, backward and the optimizer's update, fused by the backend) is
    compiled once per backend and cached on the model; only the loop over batches runs in
    Python.  Evaluation (validation, ``evaluate``, ``predict``) uses a second graph over the same
    parameters with dropout off and batch norm on its running statistics.

    Args:
        X, y: samples ``(n,) + input_dim`` and targets: integer class labels ``(n,)`` for
            ``"cross_entropy"``; float targets shaped like the output for ``"mse"`` and the
            binary losses (``(n,)`` is accepted for a one-unit output).
        loss: ``"cross_entropy"`` (softmax cross-entropy on integer labels; computed on the
            logits when the last layer applies softmax), ``"mse"``, ``"binary_cross_entropy"``
            (on the logits when the last layer applies sigmoid; refused after a named activation
            that can leave [0, 1], e.g. a linear last layer),
            ``"binary_cross_entropy_with_logits"``, or a function ``(prediction, target) ->
            scalar tensor``.
        optimizer: a ``graphc.optim`` optimizer or a name (``"adam"``, ``"sgd"``,
            ``"rmsprop"``); default ``Adam(lr=1e-3)``.  Its state persists across ``fit`` calls:
            an instance's as long as the same instance is passed, and the one a name (or the
            default) creates is kept by the model for its next ``fit`` with that name (as Keras
            keeps the compiled optimizer); pass a new instance to start afresh.
        epochs, batch_size: passes over the data and samples per step (the last batch of an
            epoch may be smaller).
        backend: ``"c"`` (falls back to ``"numpy"`` with a warning where it cannot run),
            ``"numpy"``, ``"cuda"``, ``"opencl"``.
        validation_data: ``(X_val, y_val)`` evaluated after every epoch, or
        validation_split: a fraction of ``(X, y)`` held out (shuffled with ``seed``) instead.
        early_stopping: ``None``; ``True`` (the defaults: patience 5); an int patience; or a
            dict ``patience=``, ``restore_best=True``, ``monitor=`` (default ``"val_loss"`` with validation data,
            else ``"loss"``), ``min_delta=0``.  Training stops after ``patience`` epochs without
            improvement and, with ``restore_best``, the best epoch's weights are restored
            (``model.best_epoch`` tells which, counting from 0).
        weight_decay: L2 regularization in the PyTorch/Keras convention: the training objective
            is ``loss + weight_decay / 2 * sum ||W||^2`` over the weight matrices (not biases,
            not batch-norm parameters), so each weight's gradient gains ``weight_decay * W``.
            The reported losses are the data loss, without this penalty.
        seed: seeds the shuffling and the dropout masks (the same model, data and seed give
            the same weights).  Initial weights come from the model's own seed.
        progress: a tqdm bar per epoch with the running loss and accuracy, shown only when
            stderr is a terminal.
        shuffle: visit the samples in a new random order each epoch.
        callback: ``callback(epoch, logs)`` after each epoch (``logs``: that epoch's
            metrics); returning True stops training.
        lr_schedule: ``lr_schedule(epoch) -> learning rate`` called before each epoch (counting
            from 0 in this call), as Keras' ``LearningRateScheduler``; the rates are fed to the
            compiled step through a ``trainable=False`` parameter, so the step compiles once.
            An optimizer with a number as ``lr`` gets such a parameter as its ``lr`` (a
            parameter lr is set in place); ``history["lr"]`` lists the rates used.

    Returns:
        The history: per-epoch lists ``loss`` (mean training loss over the epoch's batches),
        ``accuracy`` (classification losses), ``val_loss`` / ``val_accuracy`` (with
        validation data) and ``time`` (seconds of training per epoch).

    Raises:
        ValueError: ``X`` and ``y`` of different lengths, samples not of shape
            ``(n,) + input_dim``, NaN or infinite values in ``X``, labels that are not
            integers or out of range [0, classes) for ``"cross_entropy"``, targets of the
            wrong shape, an unknown loss or optimizer (or an optimizer class instead of an
            instance), ``epochs`` < 0 or ``batch_size`` < 1.
    """
    if optimizer is None or isinstance(optimizer, str):
        # the optimizer a name (or the default) makes is the model's, kept for its next fit as
        # Keras keeps the compiled optimizer: a second fit continues Adam's moments and step
        # count instead of restarting them (a fresh Adam's first steps are full-size)
        key = "adam" if optimizer is None else optimizer.lower()
        owned = model.__dict__.setdefault("_optimizers", {})
        if key not in owned:
            owned[key] = optim.Adam(lr=1e-3) if optimizer is None else optim.get(optimizer)
        optimizer = owned[key]
    else:
        optimizer = optim.get(optimizer)
    if isinstance(optimizer.lr, Tensor):  # a schedule: fit feeds X and y only
        fed = [t.name for t in toposort([optimizer.lr]) if t.op == "placeholder"]
        if fed:
            raise ValueError(f"fit: the optimizer's lr needs placeholder(s) {fed}, which fit "
                             f"does not feed; use a trainable=False parameter and set its "
                             f".value between fits")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    weight_decay = check_weight_decay(weight_decay)
    spec = L.resolve(loss, model.last_activation)
    X = model._check_X(X)
    y = L.prepare_targets(spec, model.output_shape, y)
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths: {len(X)} != {len(y)}")
    if validation_data is not None and validation_split:
        raise ValueError("give validation_data or validation_split, not both")
    if validation_split:
        (X, y), validation_data = gdata.train_val_split(X, y, validation_split, seed=seed)
    if len(X) == 0:
        raise ValueError("fit: no training samples")
    # a training batch norm needs more than one sample per batch (PyTorch raises ValueError, see
    # ops.batch_norm).  Batches of one only: an error now, not after compiling.  A last batch
    # of one: left out of each epoch, with a warning, as PyTorch users drop it (DataLoader's
    # drop_last) rather than stop training at the end of the first epoch on it
    drop_single = False
    if any(getattr(layer, "kind", None) == "batch_norm" for layer in model.layers):
        if min(int(batch_size), len(X)) == 1:
            raise ValueError(f"fit: BatchNorm needs more than 1 sample per batch when training, "
                             f"got batch_size={batch_size} with {len(X)} samples")
        if len(X) % int(batch_size) == 1:
            drop_single = True
            warnings.warn(f"fit: {len(X)} samples in batches of {batch_size} leave a last batch "
                          f"of 1 sample, which BatchNorm cannot train on: it is skipped in "
                          f"each epoch", stacklevel=3)
    # NaN / inf data would make every weight NaN without any error: refuse it up front
    require_finite("fit: X", X)
    require_finite("fit: y", y)
    if validation_data is not None:
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        Xv = model._check_X(Xv)
        yv = L.prepare_targets(spec, model.output_shape, yv)
        if len(Xv) != len(yv):
            raise ValueError(f"validation_data: X and y have different lengths: "
                             f"{len(Xv)} != {len(yv)}")
        if len(Xv) == 0:
            # else the first epoch trains, then evaluate() refuses the empty set
            raise ValueError(f"validation_split={validation_split} leaves no validation "
                             f"sample out of {len(X) + len(Xv)}" if validation_split
                             else "validation_data: no samples")
        require_finite("validation_data: X", Xv)
        require_finite("validation_data: y", yv)
    history = _empty_history(spec.classification, validation_data is not None)
    if lr_schedule is not None:
        _schedulable_lr(optimizer, lr_schedule)
        history["lr"] = []
    stopper = EarlyStopping.from_arg(early_stopping, validation_data is not None, history)

    step = _train_step(model, spec, y, optimizer, weight_decay, seed, backend)
    model.loss = loss
    rng = np.random.default_rng(seed)
    model.best_epoch = None
    n_batches = -(-len(X) // int(batch_size)) - drop_single

    for epoch in range(int(epochs)):
        if lr_schedule is not None:
            rate = _set_scheduled_lr(optimizer, lr_schedule, epoch)
        start = time.perf_counter()
        bar = _progress_bar(n_batches, f"epoch {epoch + 1}/{epochs}", progress)
        total, correct, seen = 0.0, 0.0, 0
        order_seed = int(rng.integers(2 ** 63))
        # the same batches as gdata.batches(X, y, batch_size, shuffle, order_seed), gathered
        # a chunk at a time into reused buffers: xb, yb are only valid until the next batch,
        # and only the compiled step (which reads them during the call) ever sees them
        for xb, yb in gdata._reused_batches(X, y, int(batch_size), shuffle=shuffle,
                                            seed=order_seed):
            n = len(xb)
            if drop_single and n == 1:
                continue
            outs = step(xb, yb)
            total += float(outs[0]) * n
            seen += n
            if spec.classification:
                correct += float(outs[1])
            if bar is not None:
                post = {"loss": f"{total / seen:.4f}"}
                if spec.classification:
                    post["acc"] = f"{correct / seen:.4f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
        logs = {"loss": total / seen}
        if spec.classification:
            logs["accuracy"] = correct / seen
        logs["time"] = time.perf_counter() - start
        if lr_schedule is not None:
            logs["lr"] = rate
        if validation_data is not None:
            val = model.evaluate(Xv, yv, loss=loss, batch_size=max(int(batch_size), 256),
                                 backend=backend)
            logs.update({f"val_{k}": v for k, v in val.items()})
        for k in history:
            history[k].append(float(logs[k]))
        if bar is not None:
            bar.set_postfix({k.replace("accuracy", "acc"): f"{v:.4f}"
                             for k, v in logs.items() if k != "time"})
            bar.close()
        stop = False
        if stopper is not None:
            stop = stopper.update(epoch, logs, model)
        if callback is not None and callback(epoch, dict(logs)):
            stop = True
        if stop:
            break

    if stopper is not None and stopper.best_epoch is not None:
        model.best_epoch = stopper.best_epoch
        if stopper.restore_best and stopper.best_weights is not None:
            model.set_weights(stopper.best_weights)
    return history


def _document_sequential_fit():
    # help(model.fit) shows the whole documentation, not a pointer to this module
    from .model import Sequential
    Sequential.fit.__doc__ = fit.__doc__.replace("Train ``model`` on", "Train the model on")


_document_sequential_fit()
