"""The same MLP trained with each activation function: loss curves in one plot.

784-128-128-10 on a subset of MNIST, Adam, the same seed, data order and initialization
family for every run (He-normal for ReLU-like units, LeCun for SELU, Glorot otherwise).
"""
from __future__ import annotations

import os

from _common import backend as pick_backend
from _common import gc, load, parser, plot_curves

nn = gc.nn

ACTIVATIONS = ["relu", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "softplus",
               "tanh", "sigmoid", "softsign", "hard_tanh"]
RELU_LIKE = {"relu", "leaky_relu", "elu", "gelu", "silu", "mish", "softplus"}


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5)
    p.add_argument("--train-size", type=int, default=10000,
                   help="training images used (at most)")
    p.add_argument("--activations", default=",".join(ACTIVATIONS),
                   help="comma-separated activations to compare")
    args = p.parse_args(argv)
    be = pick_backend(args.backend)
    (Xtr, ytr), (Xte, yte), source = load("mnist", args.data_dir, args.quick,
                                          n_quick=(1000, 500), seed=args.seed)
    Xtr, ytr = Xtr[:args.train_size], ytr[:args.train_size]
    epochs = 1 if args.quick else args.epochs
    print(f"data: {source}: {len(Xtr)} training, {len(Xte)} test images; backend {be}")
    curves, rows = {}, []
    for act in args.activations.split(","):
        init = "he" if act in RELU_LIKE else "lecun" if act == "selu" else "glorot"
        model = nn.Sequential([nn.Dense(128, act, init=init), nn.Dense(128, act, init=init),
                               nn.Dense(10, init="glorot")], 784, seed=args.seed)
        hist = model.fit(Xtr, ytr, optimizer=gc.optim.Adam(lr=1e-3), epochs=epochs,
                         batch_size=64, backend=be, seed=args.seed, progress=False)
        acc = model.evaluate(Xte, yte, backend=be)["accuracy"]
        curves[act] = hist["loss"]
        rows.append((act, hist["loss"][-1], acc))
        print(f"{act:>10}: final training loss {hist['loss'][-1]:.4f}, test accuracy "
              f"{acc:.4f}", flush=True)
    best = min(rows, key=lambda r: r[1])
    print(f"lowest training loss: {best[0]}")
    plot_curves(curves, os.path.join(args.out, "activations.png"), "training loss",
                "784-128-128-10 on MNIST: training loss per activation")
    return rows


if __name__ == "__main__":
    main()
