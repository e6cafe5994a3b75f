"""XOR, as in the lectures (Goodfellow et al., Deep Learning, section 6.1).

1. A linear model cannot learn XOR: the least-squares solution (normal equations) is w = 0,
   b = 1/2, predicting 0.5 everywhere; gradient descent on the MSE finds the same.
2. A 2-2-1 ReLU network can: W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0 gives
   f(x) = w . relu(W^T x + c) + b = [0, 1, 1, 0] exactly.
3. The same network learned by gradient descent from a random start (gc.grad + gc.compile
   with SGD updates: one compiled call per step).
"""
from __future__ import annotations

import numpy as np

from _common import backend as pick_backend
from _common import gc, parser


def fmt(v):
    return "[" + ", ".join(f"{x:.4g}" for x in np.ravel(v)) + "]"


def linear_model(X, y, be, steps):
    A = np.hstack([X, np.ones((4, 1))]).astype(np.float64)
    coef = np.linalg.solve(A.T @ A, A.T @ y)  # normal equations
    print("1. linear model, least squares (normal equations):")
    print(f"   w = {fmt(np.round(coef[:2], 6) + 0.0)}, b = {coef[2]:.4g}")
    print(f"   predictions: {fmt(np.round(A @ coef, 6) + 0.0)}")
    w = gc.parameter(np.array([[0.3], [-0.2]], np.float32), name="w")
    b = gc.parameter(np.zeros(1, np.float32), name="b")
    x = gc.placeholder((None, 2), name="x")
    t = gc.placeholder((None, 1), name="t")
    pred = x @ w + b
    loss = gc.mse(pred, t)
    step = gc.compile([x, t], loss, gc.optim.SGD(0.2).updates([w, b], gc.grad(loss, [w, b])),
                      backend=be)
    for _ in range(steps):
        step(X, y[:, None])
    out = gc.compile([x], pred, backend=be)(X)
    print(f"   gradient descent on the MSE ({steps} steps): predictions "
          f"{fmt(np.round(out, 3) + 0.0)}  (0.5 everywhere: XOR is not linear)")


def relu_net(x, W, c, w, b):
    return gc.relu(x @ W + c) @ w + b


def exact_solution(X, be):
    W = gc.constant(np.array([[1, 1], [1, 1]], np.float32))
    c = gc.constant(np.array([0, -1], np.float32))
    w = gc.constant(np.array([1, -2], np.float32))
    b = gc.constant(np.float32(0))
    x = gc.placeholder((None, 2), name="x")
    out = gc.compile([x], relu_net(x, W, c, w, b), backend=be)(X)
    print("2. ReLU network W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0:")
    print(f"   predictions: [{', '.join(str(int(round(v))) for v in out)}]")


def learned(X, y, be, seed, steps, lr):
    rng = np.random.default_rng(seed)
    W = gc.parameter(rng.normal(0, 1, (2, 2)).astype(np.float32), name="W")
    c = gc.parameter(np.zeros(2, np.float32), name="c")
    w = gc.parameter(rng.normal(0, 1, (2,)).astype(np.float32), name="w")
    b = gc.parameter(np.float32(0), name="b")
    x = gc.placeholder((None, 2), name="x")
    t = gc.placeholder((None,), name="t")
    pred = relu_net(x, W, c, w, b)
    loss = gc.mse(pred, t)
    params = [W, c, w, b]
    step = gc.compile([x, t], loss, gc.optim.SGD(lr).updates(params, gc.grad(loss, params)),
                      backend=be)
    for i in range(steps):
        value = float(step(X, y))
    out = gc.compile([x], pred, backend=be)(X)
    print(f"3. the same network learned by gradient descent (seed {seed}, {steps} steps of "
          f"SGD, lr {lr}):")
    Wv = "[" + ", ".join(fmt(row) for row in W.value) + "]"
    print(f"   W = {Wv}, c = {fmt(c.value)}, w = {fmt(w.value)}, "
          f"b = {float(b.value):.4g}")
    print(f"   final loss {value:.2e}, predictions {fmt(np.round(out, 3) + 0.0)}, rounded "
          f"[{', '.join(str(int(round(v))) for v in out)}]")
    return out


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=2000, files=False,
               epochs_help="full-batch gradient-descent steps of parts 1 and 3")
    # with only two hidden ReLUs many random starts get stuck (a dead unit, a plateau at
    # loss 1/6 or 1/8); seed 1 is one of the starts that reach the exact solution
    p.set_defaults(seed=1)
    args = p.parse_args(argv)
    be = pick_backend(args.backend)
    steps = 200 if args.quick else args.epochs  # --epochs counts full-batch steps here
    X, y = gc.data.xor()
    linear_model(X, y, be, steps)
    exact_solution(X, be)
    learned(X, y, be, seed=args.seed, steps=args.epochs if not args.quick else 1000, lr=0.1)


if __name__ == "__main__":
    main()
