"""``graphc train``: train an MLP classifier on MNIST-like data and save the model and its curves.

With no arguments it trains 784-256-256-10 (ReLU, Adam) on the MNIST test set that ships with
graphc (split 8,000 training / 2,000 test images), so ``pip install . && graphc train`` works
offline on a fresh machine.  ``--dataset mnist`` / ``fashion-mnist`` use the full data sets
(60,000 / 10,000) found through ``--data-dir``, ``GRAPHC_DATA``, ``../shared/data`` or the
download cache.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

DATASETS = ("default", "mnist", "fashion-mnist")
BACKENDS = ("c", "numpy", "cuda", "opencl")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.05, "rmsprop": 1e-3}


def _layers(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 256,256, got "
                                         f"{text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _number(kind, text):
    try:
        v = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def _positive(kind):
    def parse(text):
        v = _number(kind, text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return v
    return parse


def _non_negative(text):
    v = _number(float, text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def _fraction(text):
    v = _number(float, text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return v


def _momentum(text):
    v = _number(float, text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return v


# (argparse names the type function in its message: "invalid <name> value")
for _f, _n in ((_fraction, "fraction"), (_momentum, "momentum"), (_non_negative, "number")):
    _f.__name__ = _n


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to every option with a help text, unless the text already
    states its default (--init, --lr: a default that depends on other options)."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if "default:" in text else super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = " ".join(__doc__.replace("``", "").split("\n\n")[:2])
    parser.formatter_class = _HelpFormatter
    parser.add_argument("--dataset", choices=DATASETS, default="default",
                        help="'default' is the MNIST test set shipped with graphc (8k/2k split)")
    parser.add_argument("--data-dir", default=None,
                        help="directory with the dataset's IDX files (else GRAPHC_DATA, data/ or "
                             "../shared/data, the cache, a download)")
    parser.add_argument("--layers", type=_layers, default="256,256",  # (parsed by _layers)
                        help="hidden layer sizes, comma-separated")
    parser.add_argument("--activation", default="relu",
                        help="hidden activation (relu, tanh, sigmoid, gelu, ...)")
    parser.add_argument("--init", default=None,
                        help="weight init: he, glorot, lecun, normal, zeros "
                             "(default: he for relu-like, lecun for selu, glorot otherwise)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    parser.add_argument("--lr", type=_positive(float), default=None,
                        help="learning rate (default: 1e-3 for adam/rmsprop, 0.05 for sgd)")
    parser.add_argument("--momentum", type=_momentum, default=0.0,
                        help="SGD momentum (--optimizer sgd only)")
    parser.add_argument("--epochs", type=_positive(int), default=5,
                        help="passes over the training set")
    parser.add_argument("--batch-size", type=_positive(int), default=128,
                        help="samples per training step")
    parser.add_argument("--backend", choices=BACKENDS, default="c",
                        help="falls back to numpy (with a warning) where it cannot run")
    parser.add_argument("--weight-decay", type=_non_negative, default=0.0,
                        help="L2 penalty: loss + wd/2 * sum ||W||^2")
    parser.add_argument("--dropout", type=_fraction, default=0.0,
                        help="dropout rate after each hidden layer")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initialization, data order, dropout and split")
    parser.add_argument("--limit", type=_positive(int), default=None,
                        help="use at most N training and N test samples (quick runs)")
    parser.add_argument("--out", default="graphc-run",
                        help="directory for the saved model, history.json and history.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_backend(name: str, say=print) -> str:
    """``name`` if it can run here, else ``"numpy"`` after a warning line."""
    import graphc as gc
    if name == "numpy":
        return name
    try:
        gc.compile([], gc.constant(1.0), backend=name)
        return name
    except gc.BackendUnavailable as e:
        say(f"warning: backend {name!r} is unavailable here ({e}); falling back to numpy")
        return "numpy"


def load_data(dataset: str, data_dir: str | None, seed: int = 0):
    """``(X_train, y_train), (X_test, y_test)`` for ``dataset``."""
    import graphc as gc
    if dataset == "default":
        X, y = gc.data.load("default")
        return gc.data.train_val_split(X, y, 0.2, seed=seed)  # 8,000 / 2,000
    return gc.data.load(dataset, path=data_dir)


def run(args) -> int:
    import numpy as np

    import graphc as gc
    from graphc import nn, optim

    def err(msg):
        print(msg, file=sys.stderr)

    try:
        (Xtr, ytr), (Xte, yte) = load_data(args.dataset, args.data_dir, args.seed)
    except (gc.data.DatasetNotFoundError, ValueError, OSError) as e:
        err(f"graphc train: cannot load dataset {args.dataset!r}: {e}")
        return 1
    if args.limit:
        Xtr, ytr, Xte, yte = Xtr[:args.limit], ytr[:args.limit], Xte[:args.limit], \
            yte[:args.limit]
    backend = resolve_backend(args.backend, err)

    try:
        act = nn.activations.normalize(args.activation)
    except ValueError as e:
        err(f"graphc train: {e}")
        return 2
    init = args.init or ("he" if act in ("relu", "leaky_relu", "elu", "gelu", "silu", "swish",
                                         "mish") else "lecun" if act == "selu" else "glorot")
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    kwargs = {"lr": lr}
    if args.optimizer == "sgd":
        kwargs["momentum"] = args.momentum
    elif args.momentum:
        err(f"graphc train: --momentum applies to sgd only")
        return 2
    try:  # a bad --init (or a value the layers or optimizers reject): a usage error
        layers = []
        for units in args.layers:
            layers.append(nn.Dense(units, act, init=init))
            if args.dropout:
                layers.append(nn.Dropout(args.dropout))
        layers.append(nn.Dense(10, init="glorot"))
        model = nn.Sequential(layers, Xtr.shape[1], seed=args.seed)
        opt = optim.get(args.optimizer, **kwargs)
    except ValueError as e:
        err(f"graphc train: {e}")
        return 2

    arch = "-".join(str(d) for d in [Xtr.shape[1], *args.layers, 10])
    print(f"dataset {args.dataset}: {len(Xtr)} training, {len(Xte)} test samples")
    print(f"model {arch} ({act}, {model.count_params()} parameters), {opt!r}, batch "
          f"{args.batch_size}, backend {backend}")

    def report(epoch, logs):
        print(f"epoch {epoch + 1}/{args.epochs}: loss {logs['loss']:.4f}  accuracy "
              f"{logs['accuracy']:.4f}  test loss {logs['val_loss']:.4f}  test accuracy "
              f"{logs['val_accuracy']:.4f}  ({logs['time']:.2f} s)", flush=True)

    start = time.perf_counter()
    history = model.fit(Xtr, ytr, loss="cross_entropy", optimizer=opt, epochs=args.epochs,
                        batch_size=args.batch_size, backend=backend,
                        validation_data=(Xte, yte), weight_decay=args.weight_decay,
                        seed=args.seed, progress=not args.no_progress, callback=report)
    total = time.perf_counter() - start
    result = model.evaluate(Xte, yte, backend=backend)
    times = history["time"]
    print(f"test accuracy: {result['accuracy']:.4f} (loss {result['loss']:.4f})")
    if len(times) > 1:  # the first epoch also compiles the step: report it apart
        print(f"time per epoch: {float(np.mean(times[1:])):.2f} s (first epoch "
              f"{times[0]:.2f} s with compilation; total {total:.1f} s)")
    else:
        print(f"time per epoch: {times[0]:.2f} s (with compilation; total {total:.1f} s)")

    os.makedirs(args.out, exist_ok=True)
    model_dir = model.save(os.path.join(args.out, "model"))
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
                   "backend": backend, "history": history, "test": result}, f, indent=2,
                  default=str)
    print(f"saved model to {model_dir}")
    try:
        plot = gc.plot.history(history, os.path.join(args.out, "history.png"),
                               title=f"{arch} on {args.dataset}")
        print(f"saved training curves to {plot}")
    except ImportError:
        print("note: matplotlib is not installed; skipped the plot "
              "(pip install graphc[plot])")
    return 0
