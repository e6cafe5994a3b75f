"""Benchmarks of the compiled backends against peers (numpy, PyTorch eager, JAX jit).

Each peer runs in its own subprocess (``python -m graphc.benchmarking worker ...``) so that its
environment is its own: numpy's runs with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset,
which this machine's environment sets and which slow numpy's BLAS down.  Every number is a median
after warm-up; the peers of one case run in several alternating rounds (graphc, numpy, torch,
graphc, numpy, torch, ...) and each peer keeps its best round, so a burst of noise on the shared
machine hits one round of one peer, not the comparison.  The header gives the machine's measured
FMA peak (a small C loop of independent vector FMAs, see ``fma_peak``) and the training table
the fraction of it that graphc reaches.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

DENSE_SHAPES = [(32, 784, 256), (128, 784, 256), (512, 784, 1024), (2048, 1024, 1024),
                (128, 1024, 1024)]
TRAIN_NETS = [(784, 256, 256, 10), (784, 1024, 1024, 10)]
TRAIN_BATCHES = [32, 128, 512, 2048]
ROUNDS = 3        # alternating rounds per case (dense, train and epoch suites)
QUICK_ROUNDS = 1  # with --quick, unless --rounds says otherwise


def _median_time(fn, min_time=0.3, min_reps=5, warmup=3) -> float:
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) > 2000:
            break
    return statistics.median(times)


# -- workers (run in subprocesses) ----------------------------------------------------------------

def _data(n, k, m, seed=0):
    import numpy as np
    rng = np.random.RandomState(seed)
    return (rng.rand(n, k).astype("float32"), (rng.randn(k, m) * 0.05).astype("float32"),
            rng.randn(m).astype("float32"))


def work_dense(peer: str, n: int, k: int, m: int) -> float:
    x, W, b = _data(n, k, m)
    if peer == "graphc":
        import graphc as gc
        xp = gc.placeholder((None, k), name="x")
        f = gc.compile([xp], gc.relu(xp @ gc.parameter(W) + gc.parameter(b)), backend="c")
        return _median_time(lambda: f(x))
    import numpy as np
    if peer == "numpy-unfused":
        return _median_time(lambda: np.maximum(x @ W + b, 0))
    if peer == "numpy-sgemm":
        return _median_time(lambda: x @ W)
    if peer == "torch":
        import torch
        torch.set_num_threads(int(os.environ.get("GRAPHC_BENCH_THREADS", "2")))
        tx, tW, tb = map(torch.from_numpy, (x, W, b))
        with torch.no_grad():
            return _median_time(lambda: torch.relu(tx @ tW + tb))
    raise ValueError(peer)


def _mlp_params(sizes, seed=0):
    import numpy as np
    rng = np.random.RandomState(seed)
    return [((rng.randn(a, b) * np.sqrt(2.0 / a)).astype("float32"), np.zeros(b, "float32"))
            for a, b in zip(sizes[:-1], sizes[1:])]


def work_train(peer: str, sizes, batch: int, lr: float = 0.01) -> float:
    import numpy as np
    rng = np.random.RandomState(1)
    X = rng.rand(batch, sizes[0]).astype("float32")
    Y = rng.randint(0, sizes[-1], batch)
    params = _mlp_params(sizes)
    if peer == "graphc":
        import graphc as gc
        x = gc.placeholder((None, sizes[0]), name="x")
        y = gc.placeholder((None,), "int64", name="y")
        ps, h = [], x
        for i, (W, b) in enumerate(params):
            Wp, bp = gc.parameter(W, name=f"W{i}"), gc.parameter(b, name=f"b{i}")
            ps += [Wp, bp]
            h = h @ Wp + bp
            if i < len(params) - 1:
                h = gc.relu(h)
        loss = gc.cross_entropy(h, y)
        grads = gc.grad(loss, ps)
        f = gc.compile([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(ps, grads)],
                       backend="c")
        return _median_time(lambda: f(X, Y))
    if peer == "numpy":
        Ws = [W.copy() for W, _ in params]
        bs = [b.copy() for _, b in params]
        onehot = np.eye(sizes[-1], dtype="float32")[Y]

        def step():  # Goodfellow Algorithms 6.3 (forward) and 6.4 (backward), then SGD
            hs, h = [X], X
            for i in range(len(Ws)):
                a = h @ Ws[i] + bs[i]
                h = np.maximum(a, 0) if i < len(Ws) - 1 else a
                hs.append(h)
            z = h - h.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot) / batch
            for i in range(len(Ws) - 1, -1, -1):
                if i < len(Ws) - 1:
                    g = g * (hs[i + 1] > 0)
                gW, gb = hs[i].T @ g, g.sum(axis=0)
                if i:
                    g = g @ Ws[i].T
                Ws[i] -= lr * gW
                bs[i] -= lr * gb
        return _median_time(step)
    if peer == "torch":
        import torch
        torch.set_num_threads(int(os.environ.get("GRAPHC_BENCH_THREADS", "2")))
        layers = []
        for i, (W, b) in enumerate(params):
            lin = torch.nn.Linear(*W.shape)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if i < len(params) - 1:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(tx), ty).backward()
            opt.step()
        return _median_time(step)
    if peer == "jax":
        import jax
        import jax.numpy as jnp
        jp = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]

        def loss_fn(ps, x, y):
            h = x
            for i, (W, b) in enumerate(ps):
                h = h @ W + b
                if i < len(ps) - 1:
                    h = jax.nn.relu(h)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], 1))

        @jax.jit
        def step(ps, x, y):
            grads = jax.grad(loss_fn)(ps, x, y)
            return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(ps, grads)]
        jx, jy = jnp.asarray(X), jnp.asarray(Y)
        state = {"p": jp}

        def run():
            state["p"] = step(state["p"], jx, jy)
            jax.block_until_ready(state["p"])
        return _median_time(run)
    raise ValueError(peer)


def work_epoch(peer: str, n: int = 60000, batch: int = 128) -> float:
    """Seconds of one training epoch (784-256-256-10 relu, Adam 1e-3, shuffled batches) after
    a warm-up epoch, so compilation is not counted."""
    import numpy as np
    rng = np.random.RandomState(0)
    X = rng.rand(n, 784).astype("float32")
    Y = rng.randint(0, 10, n)
    if peer == "graphc":
        import graphc as gc
        model = gc.nn.Sequential([gc.nn.Dense(256, "relu"), gc.nn.Dense(256, "relu"),
                                  gc.nn.Dense(10)], input_dim=784)
        hist = model.fit(X, Y, optimizer=gc.optim.Adam(1e-3), epochs=2, batch_size=batch,
                         backend="c", progress=False)
        return hist["time"][-1]
    if peer == "torch":
        import torch
        torch.set_num_threads(int(os.environ.get("GRAPHC_BENCH_THREADS", "2")))
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

        def epoch():
            perm = torch.randperm(n)
            for i in range(0, n, batch):
                idx = perm[i:i + batch]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(tx[idx]), ty[idx]).backward()
                opt.step()
        epoch()
        t = time.perf_counter()
        epoch()
        return time.perf_counter() - t
    raise ValueError(peer)


def bench_epoch(threads: int, rounds: int = ROUNDS):
    head = ["workload", "graphc s", "torch s", "graphc / torch"]
    peers = ["graphc"] + (["torch"] if _available("torch") else [])
    t = measure_rounds("epoch", peers, [], threads, rounds)
    tg, tt = t["graphc"], t.get("torch")
    return head, [["MNIST-size epoch, 784-256-256-10, Adam, batch 128", tg,
                   tt if tt else "n/a", tg / tt if tt else "n/a"]]


# -- orchestration ----------------------------------------------------------------------------------

def _peer_env(peer: str, threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "GRAPHC_BENCH_THREADS"):
        env[var] = str(threads)
    if peer.startswith("numpy"):
        # this machine's environment pins OpenBLAS to a slower kernel: give numpy its best
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    if peer == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads="
                            f"{threads}").strip()
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure(kind: str, peer: str, args: list, threads: int) -> float | None:
    """Median seconds of one case for one peer, or None when the peer is not installed."""
    cmd = [sys.executable, "-m", "graphc.benchmarking", "worker", kind, peer, json.dumps(args)]
    proc = subprocess.run(cmd, env=_peer_env(peer, threads), capture_output=True, text=True)
    if proc.returncode != 0:
        if "ModuleNotFoundError" in proc.stderr:
            return None
        raise RuntimeError(f"benchmark worker {peer} {args} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def best_of(times) -> float | None:
    """The best (smallest) of one peer's per-round times; None where every round was None."""
    times = [t for t in times if t is not None]
    return min(times) if times else None


def alternating_schedule(peers, rounds: int) -> list[str]:
    """Round after round, every peer once per round (graphc, torch, graphc, torch, ...): the
    order of repeated measurements (``fma_peak``'s thread counts; ``measure_cases`` likewise)."""
    return [p for _ in range(max(int(rounds), 1)) for p in peers]


def measure_cases(kind: str, peers, cases: list, threads: int, rounds: int = ROUNDS,
                  measure_fn=None) -> list[dict]:
    """Best-of-``rounds`` seconds per peer of each case (``args`` lists): each round runs every
    case once, and within a case every peer in turn, each in its own subprocess (``measure``).
    Rounds are outermost so a case's repetitions lie minutes apart and one noisy stretch of
    the machine cannot spoil all of them.  A peer that is not installed (None) is not asked
    again."""
    measure_fn = measure_fn or measure
    times: list[dict[str, list]] = [{p: [] for p in peers} for _ in cases]
    missing: set[str] = set()
    for _ in range(max(int(rounds), 1)):
        for c, args in enumerate(cases):
            for peer in peers:
                if peer in missing:
                    continue
                t = measure_fn(kind, peer, args, threads)
                if t is None:
                    missing.add(peer)
                times[c][peer].append(t)
    return [{p: best_of(ts) for p, ts in case.items()} for case in times]


def measure_rounds(kind: str, peers, args: list, threads: int, rounds: int = ROUNDS,
                   measure_fn=None) -> dict:
    """``measure_cases`` for one case: peers alternate round after round."""
    return measure_cases(kind, peers, [args], threads, rounds, measure_fn)[0]


# -- measured FMA peak ------------------------------------------------------------------------------

# 12 independent accumulator chains of the widest native vector FMA (enough to cover the FMA
# latency times the number of FMA pipes); the empty asm keeps the multiplier in a register so
# the compiler cannot fold or hoist the chains.  Prints the best GFLOP/s of REPS runs with
# omp_get_max_threads() threads.
FMA_PEAK_C = r"""
#include <stdio.h>
#include <omp.h>
#if defined(__AVX512F__)
#define VB 64
#elif defined(__AVX__)
#define VB 32
#else
#define VB 16
#endif
#ifndef REPS
#define REPS 5
#endif
#ifndef FLOPS_PER_REP
#define FLOPS_PER_REP 200000000L
#endif
typedef float V __attribute__((vector_size(VB)));
int main(void) {
    double best = 0;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = omp_get_wtime();
        long iters = FLOPS_PER_REP / (VB / 4);
        float tot = 0;
        #pragma omp parallel reduction(+:tot)
        {
            V a[12], b, c;
            for (int i = 0; i < 12; i++) for (int j = 0; j < VB / 4; j++) a[i][j] = i * 0.001f;
            for (int j = 0; j < VB / 4; j++) { b[j] = 0.9999f; c[j] = 1e-6f; }
            for (long it = 0; it < iters; it++) {
                #pragma GCC unroll 12
                for (int i = 0; i < 12; i++) a[i] = a[i] * b + c;
                /* b and c live in registers: left in memory, c is an unaligned 64-byte operand
                 * of every FMA, and on Intel cores split loads halve the measured peak */
                __asm__ volatile("" : "+v"(b), "+v"(c));
            }
            for (int i = 0; i < 12; i++) tot += a[i][0];
        }
        double t = omp_get_wtime() - t0;
        int nt = omp_get_max_threads();
        double gf = 2.0 * 12 * (VB / 4) * iters * nt / t / 1e9;
        if (gf > best) best = gf;
        if (tot == 12345.0f) printf("#");  /* keeps the result live */
    }
    printf("%.1f\n", best);
    return 0;
}
"""


def fma_peak(thread_counts, rounds: int = 3, cc: str | None = None,
             timeout: float = 60) -> tuple[dict, str]:
    """Measured peak fp32 FMA GFLOP/s per thread count: ``({threads: GFLOP/s}, note)``.  The
    probe is compiled at run time with ``gcc -O3 -march=native -fopenmp`` (``$CC`` if set) and
    run ``rounds`` times per thread count, alternating, keeping the best (each run is already
    the best of 5 repetitions; the rounds spread them over time, past bursts of other load).
    Without a compiler, or if it fails, the dict is empty and the note says why."""
    import shutil
    cc = cc or os.environ.get("CC", "gcc")
    exe_cc = shutil.which(cc)
    if exe_cc is None:
        return {}, f"FMA peak not measured: no C compiler ({cc!r} not found)"
    out: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="graphc-fma-") as d:
        src, exe = os.path.join(d, "fma_peak.c"), os.path.join(d, "fma_peak")
        with open(src, "w") as fh:
            fh.write(FMA_PEAK_C)
        proc = subprocess.run([exe_cc, "-O3", "-march=native", "-fopenmp", src, "-o", exe],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return {}, f"FMA peak not measured: the probe did not compile ({proc.stderr[-300:]})"
        for nt in alternating_schedule(list(dict.fromkeys(int(t) for t in thread_counts)),
                                       rounds):
            env = dict(os.environ, OMP_NUM_THREADS=str(nt))
            try:
                run = subprocess.run([exe], env=env, capture_output=True, text=True,
                                     timeout=timeout)
                gf = parse_peak_output(run.stdout)
            except (subprocess.TimeoutExpired, ValueError) as e:
                return {}, f"FMA peak not measured with {nt} threads: {e}"
            out[nt] = max(out.get(nt, 0.0), gf)
    return out, ""


def parse_peak_output(text: str) -> float:
    """The GFLOP/s the probe printed (its last line)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("the FMA probe printed nothing")
    value = float(lines[-1].lstrip("#"))
    if not value > 0:
        raise ValueError(f"the FMA probe printed {value}")
    return value


def peak_line(peaks: dict, note: str = "") -> str:
    """The header's sentence about the measured peak."""
    if not peaks:
        return note or "FMA peak not measured"
    parts = [f"{v:.0f} GFLOP/s with {t} thread{'s' if t != 1 else ''}"
             for t, v in sorted(peaks.items())]
    return ("measured fp32 FMA peak (12 independent vector FMA chains, best of 3x5 runs): "
            + ", ".join(parts) + (f" ({note})" if note else ""))


def percent_of_peak(gflops, peak) -> float | str:
    """``gflops`` as a percentage of ``peak``; "n/a" where either is unknown."""
    if not gflops or not peak:
        return "n/a"
    return 100.0 * gflops / peak


def _available(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def geomean(xs):
    xs = [x for x in xs if x]
    import math
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def bench_dense(threads: int, shapes=DENSE_SHAPES,
                rounds: int = ROUNDS) -> tuple[list[str], list[list]]:
    head = ["n x k x m", "graphc GFLOP/s", "numpy unfused GFLOP/s", "numpy sgemm GFLOP/s",
            "vs unfused", "vs sgemm"]
    rows = []
    timings = measure_cases("dense", ["graphc", "numpy-unfused", "numpy-sgemm"],
                            [[n, k, m] for n, k, m in shapes], threads, rounds)
    for (n, k, m), t in zip(shapes, timings):
        flops = 2.0 * n * k * m
        rows.append([f"{n}x{k}x{m}", flops / t["graphc"] / 1e9,
                     flops / t["numpy-unfused"] / 1e9, flops / t["numpy-sgemm"] / 1e9,
                     t["numpy-unfused"] / t["graphc"], t["numpy-sgemm"] / t["graphc"]])
    rows.append(["geomean", "", "", "", geomean([r[4] for r in rows]),
                 geomean([r[5] for r in rows])])
    return head, rows


def train_flops(sizes, batch: int) -> float:
    """Flops a training step of an MLP needs: 2 per multiply-add; per layer the forward GEMM,
    the weight gradient and the input gradient, except the first layer's input gradient (the
    data needs none, and no peer computes it).  Elementwise work is not counted."""
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2.0 * batch * (3 * macs - sizes[0] * sizes[1])


def bench_train(threads: int, nets=TRAIN_NETS, batches=TRAIN_BATCHES, rounds: int = ROUNDS,
                peak: float | None = None):
    """The training-step table; ``peak`` (GFLOP/s with ``threads`` threads) adds a "% of
    peak" column."""
    peers = ["graphc", "numpy"] + [p for p, mod in (("torch", "torch"), ("jax", "jax"))
                                   if _available(mod)]
    cases = [(sizes, batch) for sizes in nets for batch in batches]
    timings = measure_cases("train", peers, [[list(sizes), batch] for sizes, batch in cases],
                            threads, rounds)
    return train_table(peers, [(s, b, t) for (s, b), t in zip(cases, timings)], peak)


def train_table(peers, results, peak: float | None = None):
    """(head, rows) of the training-step table from ``[(sizes, batch, {peer: seconds})]``."""
    head = ["net", "batch"] + [f"{p} ms" for p in peers] + [f"vs {p}" for p in peers[1:]] \
        + ["graphc GFLOP/s", "% of peak"]
    rows = []

    def ms(v):
        return v * 1e3 if v else "n/a"

    def ratio(a, b):
        return a / b if a and b else "n/a"
    for sizes, batch, t in results:
        gflops = train_flops(sizes, batch) / t["graphc"] / 1e9
        rows.append(["-".join(map(str, sizes)), batch]
                    + [ms(t.get(p)) for p in peers]
                    + [ratio(t.get(p), t["graphc"]) for p in peers[1:]]
                    + [gflops, percent_of_peak(gflops, peak)])
    rows.append(["geomean", ""] + [""] * len(peers)
                + [geomean([r[2 + len(peers) + i] for r in rows
                            if isinstance(r[2 + len(peers) + i], float)])
                   for i in range(len(peers) - 1)]
                + ["", ""])
    return head, rows


def markdown(head, rows) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(threads: int, rounds: int = ROUNDS, peak_text: str = "") -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    line = (f"{cpu}, {os.cpu_count()} cores, {threads} threads; numpy peers run with "
            f"OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; every time is the best of {rounds} "
            f"alternating round{'s' if rounds != 1 else ''} of medians after warm-up "
            f"(each peer in its own process)")
    return line + (f"; {peak_text}" if peak_text else "")


def versions_line() -> str:
    """The software measured: graphc, the peers' packages (read from their metadata: importing
    torch or jax here would cost seconds) and the C compiler's first line."""
    from importlib import metadata
    from . import __version__
    parts = [f"graphc {__version__}"]
    for dist in ("numpy", "torch", "jax", "jaxlib"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        from .runtime.cpu import compiler
        out = subprocess.run([compiler(), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
        if out.strip():
            parts.append(out.splitlines()[0].strip())
    except Exception:  # no compiler (BackendUnavailable, OSError, a timeout): leave it out
        pass
    return "versions: " + ", ".join(parts)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


_positive_int.__name__ = "positive integer"  # argparse: "invalid positive integer value: 'x'"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="graphc bench", description=__doc__)
    ap.add_argument("--backend", default="c", choices=["c", "cuda"],
                    help="backend to benchmark (cuda needs a GPU)")
    ap.add_argument("--suite", default="all", choices=["all", "dense", "train", "epoch"])
    ap.add_argument("--threads", type=_positive_int, default=2,
                    help="threads of graphc and of every peer (default 2)")
    ap.add_argument("--quick", action="store_true", help="smallest cases only (a smoke run)")
    ap.add_argument("--rounds", type=_positive_int, default=None,
                    help=f"alternating rounds per case, each peer's best kept (default "
                         f"{ROUNDS}; {QUICK_ROUNDS} with --quick)")
    ap.add_argument("--out", default=None, help="write the tables as markdown to this file")
    args = ap.parse_args(argv)
    if args.backend == "cuda":
        from . import benchmarking_gpu
        rest = ["--suite", args.suite if args.suite != "epoch" else "all"]
        rest += (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
        return benchmarking_gpu.main(rest)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    peaks, note = fma_peak([1, args.threads])
    text = peak_line(peaks, note)
    print(text, flush=True)
    sections = [f"# graphc CPU benchmark\n\n{machine_line(args.threads, rounds, text)}\n\n"
                f"{versions_line()}\n"]
    if args.suite in ("all", "dense"):
        shapes = DENSE_SHAPES[:1] if args.quick else DENSE_SHAPES
        head, rows = bench_dense(args.threads, shapes, rounds)
        sections.append("## Fused dense forward relu(x @ W + b)\n\n" + markdown(head, rows))
        print(sections[-1] + "\n", flush=True)
    if args.suite in ("all", "train"):
        nets = TRAIN_NETS[:1] if args.quick else TRAIN_NETS
        batches = TRAIN_BATCHES[:1] if args.quick else TRAIN_BATCHES
        head, rows = bench_train(args.threads, nets, batches, rounds, peaks.get(args.threads))
        sections.append("## Training step (cross-entropy, relu, SGD)\n\n" + markdown(head, rows))
        print(sections[-1] + "\n", flush=True)
    if args.suite in ("all", "epoch") and not args.quick:
        head, rows = bench_epoch(args.threads, rounds)
        sections.append("## Training epoch (gc.nn fit vs a PyTorch loop)\n\n" + markdown(head, rows))
        print(sections[-1] + "\n", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n\n".join(sections) + "\n")
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        kind, peer, case = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        fn = {"dense": work_dense, "train": work_train, "epoch": work_epoch}[kind]
        print(fn(peer, *case))
        sys.exit(0)
    sys.exit(main())
