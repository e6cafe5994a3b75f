"""Benchmarks of the compiled backends against peers (numpy, PyTorch eager, JAX jit).

Each peer runs in its own subprocess (``python -m graphc.benchmarking worker ...``) so that its
environment is its own: numpy's runs with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset,
which this machine's environment sets and which slow numpy's BLAS down.  Every number is a median
after warm-up, every ratio is between two numbers of the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

DENSE_SHAPES = [(32, 784, 256), (128, 784, 256), (512, 784, 1024), (2048, 1024, 1024),
                (128, 1024, 1024)]
TRAIN_NETS = [(784, 256, 256, 10), (784, 1024, 1024, 10)]
TRAIN_BATCHES = [32, 128, 512, 2048]


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


def bench_epoch(threads: int):
    head = ["workload", "graphc s", "torch s", "graphc / torch"]
    tg = measure("epoch", "graphc", [], threads)
    tt = measure("epoch", "torch", [], threads) if _available("torch") else None
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


def _available(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def geomean(xs):
    xs = [x for x in xs if x]
    import math
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def bench_dense(threads: int, shapes=DENSE_SHAPES) -> tuple[list[str], list[list]]:
    head = ["n x k x m", "graphc GFLOP/s", "numpy unfused GFLOP/s", "numpy sgemm GFLOP/s",
            "vs unfused", "vs sgemm"]
    rows = []
    for n, k, m in shapes:
        flops = 2.0 * n * k * m
        t = {p: measure("dense", p, [n, k, m], threads)
             for p in ("graphc", "numpy-unfused", "numpy-sgemm")}
        rows.append([f"{n}x{k}x{m}", flops / t["graphc"] / 1e9,
                     flops / t["numpy-unfused"] / 1e9, flops / t["numpy-sgemm"] / 1e9,
                     t["numpy-unfused"] / t["graphc"], t["numpy-sgemm"] / t["graphc"]])
    rows.append(["geomean", "", "", "", geomean([r[4] for r in rows]),
                 geomean([r[5] for r in rows])])
    return head, rows


def bench_train(threads: int, nets=TRAIN_NETS, batches=TRAIN_BATCHES):
    peers = ["graphc", "numpy"] + [p for p, mod in (("torch", "torch"), ("jax", "jax"))
                                   if _available(mod)]
    head = ["net", "batch"] + [f"{p} ms" for p in peers] + [f"vs {p}" for p in peers[1:]] \
        + ["graphc GFLOP/s"]
    rows = []
    for sizes in nets:
        for batch in batches:
            t = {p: measure("train", p, [list(sizes), batch], threads) for p in peers}
            flops = 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
            rows.append(["-".join(map(str, sizes)), batch]
                        + [t[p] * 1e3 for p in peers]
                        + [t[p] / t["graphc"] for p in peers[1:]]
                        + [flops / t["graphc"] / 1e9])
    rows.append(["geomean", ""] + [""] * len(peers)
                + [geomean([r[2 + len(peers) + i] for r in rows]) for i in range(len(peers) - 1)]
                + [""])
    return head, rows


def markdown(head, rows) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {threads} threads; numpy peers run with "
            f"OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; medians after warm-up")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="graphc bench", description=__doc__)
    ap.add_argument("--backend", default="c", choices=["c", "cuda"],
                    help="backend to benchmark (cuda needs a GPU)")
    ap.add_argument("--suite", default="all", choices=["all", "dense", "train", "epoch"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smallest cases only (a smoke run)")
    ap.add_argument("--out", default=None, help="write the tables as markdown to this file")
    args = ap.parse_args(argv)
    if args.backend == "cuda":
        from . import benchmarking_gpu
        rest = ["--suite", args.suite if args.suite != "epoch" else "all"]
        rest += (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
        return benchmarking_gpu.main(rest)
    sections = [f"# graphc CPU benchmark\n\n{machine_line(args.threads)}\n"]
    if args.suite in ("all", "dense"):
        shapes = DENSE_SHAPES[:1] if args.quick else DENSE_SHAPES
        head, rows = bench_dense(args.threads, shapes)
        sections.append("## Fused dense forward relu(x @ W + b)\n\n" + markdown(head, rows))
        print(sections[-1] + "\n", flush=True)
    if args.suite in ("all", "train"):
        nets = TRAIN_NETS[:1] if args.quick else TRAIN_NETS
        batches = TRAIN_BATCHES[:1] if args.quick else TRAIN_BATCHES
        head, rows = bench_train(args.threads, nets, batches)
        sections.append("## Training step (cross-entropy, relu, SGD)\n\n" + markdown(head, rows))
        print(sections[-1] + "\n", flush=True)
    if args.suite in ("all", "epoch") and not args.quick:
        head, rows = bench_epoch(args.threads)
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
