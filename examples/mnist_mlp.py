"""MNIST with a 784-256-256-10 ReLU MLP trained by Adam (target: >= 98% test accuracy).

A step schedule: the last third of the epochs run at a tenth of the learning rate (the
optimizer keeps its moment estimates; changing ``opt.lr`` makes ``fit`` rebuild its step).

Data: --data-dir, else GRAPHC_DATA, else ../shared/data, else the embedded MNIST test set.
"""
from __future__ import annotations

import time

from _common import backend as pick_backend
from _common import gc, load, parser


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=15)
    p.add_argument("--batch-size", type=int, default=128, help="samples per Adam step")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="Adam learning rate (a tenth of it for the last third of the epochs)")
    args = p.parse_args(argv)
    be = pick_backend(args.backend)
    (Xtr, ytr), (Xte, yte), source = load("mnist", args.data_dir, args.quick, seed=args.seed)
    epochs = 1 if args.quick else args.epochs
    print(f"data: {source}: {len(Xtr)} training, {len(Xte)} test images; backend {be}")

    model = gc.nn.Sequential([gc.nn.Dense(256, "relu"), gc.nn.Dense(256, "relu"),
                              gc.nn.Dense(10)], 784, seed=args.seed)
    opt = gc.optim.Adam(lr=args.lr)
    decay_at = epochs - epochs // 3
    times = []

    def report(e, logs, offset=0):
        times.append(logs["time"])
        print(f"epoch {offset + e + 1}/{epochs} (lr {opt.lr:g}): loss {logs['loss']:.4f}, "
              f"test accuracy {logs['val_accuracy']:.4f} ({logs['time']:.1f} s)", flush=True)

    start = time.perf_counter()
    for first, count, lr in ((0, decay_at, args.lr), (decay_at, epochs - decay_at, args.lr / 10)):
        if count:
            opt.lr = lr
            model.fit(Xtr, ytr, optimizer=opt, epochs=count, batch_size=args.batch_size,
                      backend=be, validation_data=(Xte, yte), seed=args.seed + first,
                      callback=lambda e, logs, first=first: report(e, logs, first))
    elapsed = time.perf_counter() - start
    acc = model.evaluate(Xte, yte, backend=be)["accuracy"]
    print(f"test accuracy: {acc:.4f}")
    print(f"training time: {elapsed:.1f} s ({sum(times) / epochs:.2f} s per epoch)")
    return acc


if __name__ == "__main__":
    main()
