"""Why weights must not all start at zero: symmetric units stay identical forever.

With every weight and bias at 0, all hidden units of a layer compute the same function, get
the same gradient, take the same step, and so remain copies of each other however long we
train: the layer is effectively one unit wide.  (Sigmoid units are used so that the gradients
are not zero too: with tanh or ReLU and zero weights nothing but the output biases would move.)
A random initialization breaks the symmetry.
"""
from __future__ import annotations

import numpy as np

from _common import backend as pick_backend
from _common import gc, load, parser

nn = gc.nn


def unit_spread(model) -> float:
    """Max over hidden units j of |unit j's weights - unit 0's weights|: incoming weights,
    bias and outgoing weights."""
    W1, b1, W2, _ = model.get_weights()
    per_unit = np.vstack([W1, b1[None, :], W2.T])  # one column per hidden unit
    return float(np.abs(per_unit - per_unit[:, :1]).max())


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5)
    p.add_argument("--hidden", type=int, default=64, help="hidden units")
    args = p.parse_args(argv)
    be = pick_backend(args.backend)
    (Xtr, ytr), (Xte, yte), source = load("mnist", args.data_dir, args.quick,
                                          n_quick=(1000, 500), seed=args.seed)
    epochs = 1 if args.quick else args.epochs
    print(f"data: {source}: {len(Xtr)} training, {len(Xte)} test images; backend {be}")
    for init in ("zeros", "glorot"):
        model = nn.Sequential([nn.Dense(args.hidden, "sigmoid", init=init),
                               nn.Dense(10, init=init)], 784, seed=args.seed)
        model.fit(Xtr, ytr, optimizer=gc.optim.SGD(0.5, momentum=0.9), epochs=epochs,
                  batch_size=64, backend=be, seed=args.seed, progress=False)
        acc = model.evaluate(Xte, yte, backend=be)["accuracy"]
        moved = float(np.abs(model.get_weights()[0]).max())
        spread = unit_spread(model)
        print(f"{init} init: after {epochs} epoch(s) the {args.hidden} hidden units' weight "
              f"vectors differ by at most {spread:.3g} (largest weight {moved:.3g}); "
              f"test accuracy {acc:.4f}")
        if init == "zeros":
            # exactly 0 where every unit's sums are rounded alike (vectorized GEMM); BLAS may
            # round some columns differently, leaving differences at the float32 epsilon level
            verdict = ("identical" if spread == 0.0 else
                       "identical up to float rounding" if spread <= 1e-5 * max(moved, 1.0)
                       else "NOT identical")
            print(f"zero init: max difference between hidden units = {spread:g} "
                  f"(all hidden units {verdict})")


if __name__ == "__main__":
    main()
