"""Regularization against over-fitting: L2 weight decay, dropout and early stopping.

A 784-256-256-10 ReLU MLP on a small MNIST training subset (1,000 images) over-fits: the
training loss goes to ~0 while the validation loss climbs.  Each remedy is trained from the
same initial weights on the same data; the training and validation curves go in one plot.
"""
from __future__ import annotations

import os

from _common import backend as pick_backend
from _common import gc, load, parser, plot_curves

nn = gc.nn


def mlp(dropout: float, seed: int):
    layers = []
    for _ in range(2):
        layers.append(nn.Dense(256, "relu"))
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(10))
    return nn.Sequential(layers, 784, seed=seed)


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=40)
    p.add_argument("--train-size", type=int, default=1000, help="training images used")
    p.add_argument("--val-size", type=int, default=5000,
                   help="validation images used (at most: taken from the test split)")
    p.add_argument("--weight-decay", type=float, default=1e-2,
                   help="the L2 variant's weight_decay")
    p.add_argument("--dropout", type=float, default=0.2,
                   help="the dropout variant's rate (after each hidden layer)")
    p.add_argument("--patience", type=int, default=5,
                   help="the early-stopping variant's patience (epochs without a better "
                        "validation loss)")
    args = p.parse_args(argv)
    be = pick_backend(args.backend)
    (Xtr, ytr), (Xte, yte), source = load("mnist", args.data_dir, args.quick,
                                          n_quick=(300, 300), seed=args.seed)
    Xtr, ytr = Xtr[:args.train_size], ytr[:args.train_size]
    Xval, yval = Xte[:args.val_size], yte[:args.val_size]
    epochs = 2 if args.quick else args.epochs
    print(f"data: {source}: {len(Xtr)} training, {len(Xval)} validation images; backend {be}")

    variants = {
        "baseline": dict(),
        f"L2 (weight_decay={args.weight_decay:g})": dict(weight_decay=args.weight_decay),
        f"dropout ({args.dropout:g})": dict(dropout=args.dropout),
        f"early stopping (patience {args.patience})": dict(
            early_stopping=dict(patience=args.patience, restore_best=True,
                                monitor="val_loss")),
    }
    curves = {}
    print(f"{'variant':<32} {'epochs':>6} {'train loss':>10} {'val loss':>9} {'val acc':>8}")
    for name, opts in variants.items():
        model = mlp(opts.pop("dropout", 0.0), args.seed)
        hist = model.fit(Xtr, ytr, optimizer=gc.optim.Adam(lr=1e-3), epochs=epochs,
                         batch_size=32, backend=be, validation_data=(Xval, yval),
                         seed=args.seed, progress=False, **opts)
        final = model.evaluate(Xval, yval, backend=be)
        train = model.evaluate(Xtr, ytr, backend=be)
        curves[f"{name}: train"] = hist["loss"]
        curves[f"{name}: val"] = hist["val_loss"]
        ran = len(hist["loss"])
        note = f" (best epoch {model.best_epoch + 1} restored)" if "early" in name else ""
        print(f"{name:<32} {ran:>6} {train['loss']:>10.4f} {final['loss']:>9.4f} "
              f"{final['accuracy']:>8.4f}{note}", flush=True)
    plot_curves(curves, os.path.join(args.out, "regularization.png"), "cross-entropy loss",
                f"over-fitting {len(Xtr)} MNIST images: train (solid) vs validation (dashed)")


if __name__ == "__main__":
    main()
