"""Reduction kernels of the C backend against numpy: best of many calls, one process.

    PYTHONPATH=<tree> python benchmarks/bench_reduce.py [threads] [repeats]
"""
import sys
import time

import numpy as np

import graphc as gc

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
gc.set_num_threads(THREADS)
rng = np.random.default_rng(0)

CASES = [("(4096,1024) sum axis 0", (4096, 1024), 0),
         ("(4096,1024) sum axis 1", (4096, 1024), 1),
         ("4M sum (full)", (4 * 1024 * 1024,), None),
         ("(2048,256) sum axis 0 (bias grad)", (2048, 256), 0),
         ("128 mean (tiny)", (128,), "mean"),
         ("(4096,1024) max axis 1", (4096, 1024), "max1"),
         ("4M max (full)", (4 * 1024 * 1024,), "max")]


def best(f, n):
    """The fastest of many timings of ``n`` calls (per call): on a shared machine a parallel
    region whose second thread is descheduled waits a whole time slice."""
    f()
    ts = []
    for _ in range(REPEATS * max(1, 200 // n)):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        ts.append((time.perf_counter() - t0) / n)
    return min(ts)


for name, shape, axis in CASES:
    x = rng.standard_normal(shape).astype(np.float32)
    p = gc.placeholder(shape, name="x")
    if axis == "mean":
        y, ref = gc.mean(p), (lambda: np.mean(x))
    elif axis in ("max", "max1"):
        ax = 1 if axis == "max1" else None
        y, ref = gc.max(p, axis=ax), (lambda: np.max(x, axis=ax))
    else:
        y, ref = gc.sum(p, axis=axis), (lambda: np.sum(x, axis=axis))
    f = gc.compile([p], y, backend="c")
    f(x)
    n = max(1, int(2e5 // max(x.size, 1000)))
    tn, tg = best(ref, n), best(lambda: f(x), n)
    print(f"{name:36s} numpy {tn * 1e6:9.1f} us   graphc {tg * 1e6:9.1f} us   "
          f"ratio {tn / tg:5.2f}x", flush=True)
