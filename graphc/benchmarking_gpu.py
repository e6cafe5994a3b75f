"""GPU benchmark: graphc's fused dense layer and training step on CUDA against CuPy, cuBLAS and
PyTorch.

For each shape ``MxKxN`` (batch x inputs x units):

* dense forward ``relu(x @ W + b)``: graphc's one fused kernel (register-blocked GEMM with the
  bias + relu epilogue; parameters resident, kernel time only) against CuPy unfused (``matmul``,
  ``+ b``, ``maximum`` as separate kernels) and against bare cuBLAS fp32 ``cupy.matmul`` (the
  GEMM alone, a lower bound for any dense layer).  CUDA-event timing on one stream; fp32
  everywhere (no TF32: CuPy and PyTorch default to full fp32 matmuls).
* training step of an MLP ``K -> N (relu) -> 10`` with cross-entropy and SGD: graphc ``"cuda"``
  (one compiled step: batch upload, all kernels, loss download) against PyTorch CUDA eager
  (the same work: batch upload, forward, backward, ``SGD.step``, ``loss.item()``), wall time
  per step.

Usage::

    python benchmarks/bench_gpu.py [--suite all|dense|train] [--shapes 32x784x256,...]
                                   [--quick] [--repeat N] [--out FILE] [--json FILE]

(``graphc bench --backend cuda`` forwards ``--suite/--quick/--out``; ``--threads`` is
accepted and ignored.)  Without an NVIDIA GPU and CuPy it prints why and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.join(HERE, "..") not in sys.path:
    sys.path.insert(0, os.path.join(HERE, ".."))

SHAPES = ["32x784x256", "128x784x256", "512x784x1024", "2048x1024x1024", "128x1024x1024",
          "8192x4096x4096"]
QUICK_SHAPES = SHAPES[:3]
CLASSES = 10

NO_GPU_EXIT = 2


class NoGPU(RuntimeError):
    """The benchmark cannot run here (no CuPy, driver or device)."""


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"128x784x256"`` -> (128, 784, 256) (batch M, inputs K, units N)."""
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape must be MxKxN with positive integers, "
                                         f"got {text!r}")
    m, k, n = (int(p) for p in parts)
    return m, k, n


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    return [parse_shape(s) for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="all", choices=["all", "dense", "train", "epoch"],
                   help="epoch: same as train here (per-step timing)")
    p.add_argument("--shapes", type=parse_shapes, default=None,
                   help="comma-separated MxKxN list (default: the six standard shapes)")
    p.add_argument("--quick", action="store_true", help="three small shapes, fewer repeats")
    p.add_argument("--repeat", type=int, default=None, help="timed repetitions per measurement")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)  # CPU bench's
    p.add_argument("--out", default=None, help="also write the markdown table to FILE")
    p.add_argument("--json", default=None, help="write the rows as JSON to FILE")
    return p


# -- environment --------------------------------------------------------------------------------

def require_gpu():
    """(cupy, CudaAdapter) or NoGPU saying why."""
    from graphc.errors import BackendUnavailable
    try:
        from graphc.runtime.cuda_backend import default_adapter
        adapter = default_adapter()
    except BackendUnavailable as e:
        raise NoGPU(str(e)) from None
    except Exception as e:  # a broken CuPy install
        raise NoGPU(f"CUDA backend unavailable: {type(e).__name__}: {e}") from None
    return adapter.cp, adapter


def torch_cuda():
    """torch when it is installed with a usable CUDA device, else None."""
    try:
        import torch
    except Exception:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


# -- timing -------------------------------------------------------------------------------------

def gpu_time_ms(fn, cp, stream, repeat: int, warmup: int = 3) -> float:
    """Mean time of ``fn()`` (which enqueues work on ``stream``) by CUDA events."""
    with stream:
        for _ in range(warmup):
            fn()
    stream.synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    with stream:
        start.record(stream)
        for _ in range(repeat):
            fn()
        end.record(stream)
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / repeat


def wall_time_ms(fn, repeat: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` (which synchronizes by itself)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def repeats_for(m: int, k: int, n: int, quick: bool, override: Optional[int]) -> int:
    if override:
        return override
    flops = 2.0 * m * k * n
    base = max(5, min(200, int(2e11 / max(flops, 1.0))))  # ~0.1-1 s per measurement
    return max(3, base // 4) if quick else base


# -- benchmarks ---------------------------------------------------------------------------------

def bench_dense(m: int, k: int, n: int, cp, adapter, repeat: int) -> dict:
    import numpy as np

    import graphc as gc
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, k), dtype=np.float32)
    W = (rng.standard_normal((k, n), dtype=np.float32) * np.float32(1 / np.sqrt(k)))
    b = rng.standard_normal(n, dtype=np.float32)
    x = gc.placeholder((None, k), name="x")
    Wp, bp = gc.parameter(W, name="W"), gc.parameter(b, name="b")
    f = gc.compile([x], gc.relu(x @ Wp + bp), backend="cuda")
    got = f(X)                              # specializes, uploads W and b once
    spec = f._exe._last
    kinds = [k_.kind for k_ in spec.lowered.kernels]
    stream = adapter.stream

    def graphc_fused():                     # kernels only: inputs already on the device
        adapter.execute(spec.prepared)

    with stream:
        dX, dW, db = cp.asarray(X), cp.asarray(W), cp.asarray(b)
    t_fused = gpu_time_ms(graphc_fused, cp, stream, repeat)
    t_unfused = gpu_time_ms(lambda: cp.maximum(cp.matmul(dX, dW) + db, 0), cp, stream, repeat)
    t_cublas = gpu_time_ms(lambda: cp.matmul(dX, dW), cp, stream, repeat)
    with stream:
        ref = cp.asnumpy(cp.maximum(cp.matmul(dX, dW) + db, 0), stream=stream)
    stream.synchronize()
    err = float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))
    gflop = 2.0 * m * k * n / 1e9
    return {"shape": f"{m}x{k}x{n}", "graphc_kernels": "+".join(kinds),
            "graphc_fused_ms": t_fused, "cupy_unfused_ms": t_unfused, "cublas_ms": t_cublas,
            "graphc_gflops": gflop / (t_fused / 1e3), "cublas_gflops": gflop / (t_cublas / 1e3),
            "vs_cupy_unfused": t_unfused / t_fused, "vs_cublas": t_cublas / t_fused,
            "max_rel_err": err}


def bench_train(m: int, k: int, n: int, cp, adapter, repeat: int, use_torch: bool) -> dict:
    import numpy as np

    import graphc as gc
    rng = np.random.default_rng(1)
    X = rng.random((m, k), dtype=np.float32)
    Y = rng.integers(0, CLASSES, m).astype(np.int64)
    W1 = (rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32)
    W2 = (rng.standard_normal((n, CLASSES)) * np.sqrt(2.0 / n)).astype(np.float32)
    lr = 0.01
    x = gc.placeholder((None, k), name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    params = [gc.parameter(W1.copy(), name="W1"), gc.parameter(np.zeros(n, np.float32), name="b1"),
              gc.parameter(W2.copy(), name="W2"),
              gc.parameter(np.zeros(CLASSES, np.float32), name="b2")]
    h = gc.relu(x @ params[0] + params[1])
    loss = gc.cross_entropy(h @ params[2] + params[3], y)
    grads = gc.grad(loss, params)
    step = gc.compile([x, y], loss, updates=gc.optim.SGD(lr).updates(params, grads),
                      backend="cuda")
    step(X, Y)
    t_graphc = wall_time_ms(lambda: step(X, Y), repeat)
    spec = step._exe._last
    t_kernels = gpu_time_ms(lambda: adapter.execute(spec.prepared), cp, adapter.stream, repeat)
    row = {"shape": f"{m}x{k}x{n}", "graphc_step_ms": t_graphc, "graphc_step_kernels_ms": t_kernels,
           "graphc_launches": len(spec.prepared), "torch_step_ms": None, "vs_torch": None}
    torch = torch_cuda() if use_torch else None
    if torch is not None:
        dev = torch.device("cuda")
        model = torch.nn.Sequential(torch.nn.Linear(k, n), torch.nn.ReLU(),
                                    torch.nn.Linear(n, CLASSES)).to(dev)
        with torch.no_grad():
            model[0].weight.copy_(torch.from_numpy(W1.T.copy()))
            model[0].bias.zero_()
            model[2].weight.copy_(torch.from_numpy(W2.T.copy()))
            model[2].bias.zero_()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

        def torch_step():
            xb, yb = Xt.to(dev), Yt.to(dev)
            out = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            return out.item()

        t_torch = wall_time_ms(torch_step, repeat)
        row["torch_step_ms"] = t_torch
        row["vs_torch"] = t_torch / t_graphc
    return row


def benchmark_rows(shapes: Sequence[tuple[int, int, int]] = None, suite: str = "all",
                   quick: bool = False, repeat: Optional[int] = None,
                   use_torch: bool = True) -> dict:
    """Run the benchmarks; returns ``{"device": name, "dense": rows, "train": rows}``.
    Raises NoGPU when there is no usable CUDA GPU."""
    cp, adapter = require_gpu()
    if shapes is None:
        shapes = [parse_shape(s) for s in (QUICK_SHAPES if quick else SHAPES)]
    out = {"device": adapter.name, "dense": [], "train": []}
    for m, k, n in shapes:
        reps = repeats_for(m, k, n, quick, repeat)
        if suite in ("all", "dense"):
            out["dense"].append(bench_dense(m, k, n, cp, adapter, reps))
        if suite in ("all", "train", "epoch"):
            out["train"].append(bench_train(m, k, n, cp, adapter, max(3, reps // 4) if not repeat
                                            else reps, use_torch))
    return out


# -- report -------------------------------------------------------------------------------------

def _fmt(v, spec=".3f"):
    if v is None:
        return "n/a"
    return format(v, spec)


def format_tables(result: dict) -> str:
    lines = [f"## graphc GPU benchmark on {result['device']}", ""]
    if result["dense"]:
        lines += ["### Dense forward relu(x @ W + b), fp32 (ms per call, CUDA events)", "",
                  "| MxKxN | graphc fused | CuPy unfused | cuBLAS matmul | graphc GFLOP/s | "
                  "cuBLAS GFLOP/s | vs CuPy unfused | vs cuBLAS | max rel err |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in result["dense"]:
            lines.append(f"| {r['shape']} | {_fmt(r['graphc_fused_ms'])} | "
                         f"{_fmt(r['cupy_unfused_ms'])} | {_fmt(r['cublas_ms'])} | "
                         f"{_fmt(r['graphc_gflops'], '.0f')} | {_fmt(r['cublas_gflops'], '.0f')} | "
                         f"{_fmt(r['vs_cupy_unfused'], '.2f')}x | {_fmt(r['vs_cublas'], '.2f')}x | "
                         f"{_fmt(r['max_rel_err'], '.1e')} |")
        lines += ["", "(vs X = X's time / graphc's time: above 1 means graphc is faster.)", ""]
    if result["train"]:
        lines += ["### Training step K -> N (relu) -> 10, cross-entropy, SGD (ms per step, wall)",
                  "",
                  "| MxKxN | graphc step | graphc kernels only | launches | PyTorch eager | "
                  "vs PyTorch |", "|---|---|---|---|---|---|"]
        for r in result["train"]:
            lines.append(f"| {r['shape']} | {_fmt(r['graphc_step_ms'])} | "
                         f"{_fmt(r['graphc_step_kernels_ms'])} | {r['graphc_launches']} | "
                         f"{_fmt(r['torch_step_ms'])} | "
                         f"{_fmt(r['vs_torch'], '.2f') + 'x' if r['vs_torch'] else 'n/a'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = benchmark_rows(args.shapes, args.suite, args.quick, args.repeat,
                                not args.no_torch)
    except NoGPU as e:
        print(f"bench_gpu: no usable CUDA GPU, nothing measured. {e}\n"
              f"Run it on a machine with an NVIDIA GPU, its driver and CuPy "
              f"(pip install cupy-cuda12x).", file=sys.stderr)
        return NO_GPU_EXIT
    text = format_tables(result)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
