"""Transposes on the C backend against numpy (``np.ascontiguousarray(x.transpose(p))``) and
PyTorch eager (``x.permute(p).contiguous()``): a 4096 x 4096 float32 matrix, and the transposes
the backward passes of benchmarks/sweep_ops.py's layout cases run (the inverse permutations, on
the gradients' shapes).  Prints a markdown table of the best time per call (us).

    PYTHONPATH=<tree> python benchmarks/bench_transpose.py [--threads 1] [--rounds 7]

Every call includes the output's allocation, for all three.  The peers of a case are timed in
the same process, interleaved round by round; best of the rounds.
"""
import argparse
import time

import numpy as np

import graphc as gc

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

CASES = [
    ("2-D (4096,4096) (1,0)", (4096, 4096), (1, 0)),
    ("(32,128,256) (2,1,0)", (32, 128, 256), (2, 1, 0)),
    ("(256,128,32) (2,1,0): bwd of the above", (256, 128, 32), (2, 1, 0)),
    ("(32,256,128) (0,2,1): bwd of (32,128,256) (0,2,1)", (32, 256, 128), (0, 2, 1)),
    ("(32,8,128,64) (0,2,1,3): bwd of split heads", (32, 8, 128, 64), (0, 2, 1, 3)),
    ("(32,8,64,128) (0,1,3,2): bwd of (0,1,3,2)", (32, 8, 64, 128), (0, 1, 3, 2)),
    ("(4096,64) (1,0): bwd of flatten.T", (4096, 64), (1, 0)),
]


def calls_per_batch(fn, target=0.02) -> int:
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(target / max(time.perf_counter() - t0, 1e-7)))


def best_times(fns: dict, rounds: int) -> dict:
    ns = {k: calls_per_batch(f) for k, f in fns.items()}
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(ns[k]):
                f()
            best[k] = min(best[k], (time.perf_counter() - t0) / ns[k])
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    gc.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"threads={args.threads}, best of {args.rounds} rounds, us per call (float32)")
    print("| transpose | graphc | numpy | torch | graphc / best peer |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    for name, shape, perm in CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        ph = gc.placeholder(shape, name="x")
        f = gc.compile([ph], gc.transpose(ph, perm), backend="c")
        assert np.array_equal(f(x), x.transpose(perm))
        fns = {"graphc": lambda: f(x),
               "numpy": lambda: np.ascontiguousarray(x.transpose(perm))}
        if torch is not None:
            tx = torch.from_numpy(x)
            fns["torch"] = lambda: tx.permute(*perm).contiguous()
        best = best_times(fns, args.rounds)
        peer = min(v for k, v in best.items() if k != "graphc")
        t = best.get("torch")
        print(f"| {name} | {best['graphc'] * 1e6:.0f} | {best['numpy'] * 1e6:.0f} | "
              f"{'—' if t is None else f'{t * 1e6:.0f}'} | {best['graphc'] / peer:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
