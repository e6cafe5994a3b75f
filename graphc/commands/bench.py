"""``graphc bench``: the benchmark tables (see graphc.benchmarking)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    from ..benchmarking import _positive_int
    parser.add_argument("bench_args", nargs="*",
                        help="further options of the benchmark module, after --: with "
                             "--backend cuda, --shapes MxKxN,... --repeat N --no-torch "
                             "--json FILE (e.g. graphc bench --backend cuda -- --no-torch)")
    parser.add_argument("--backend", default="c", choices=["c", "cuda"],
                        help="backend to benchmark (cuda needs an NVIDIA GPU and CuPy; "
                             "default c)")
    parser.add_argument("--suite", default="all", choices=["all", "dense", "train", "epoch"],
                        help="dense: a fused dense layer; train: one training step; epoch: "
                             "a gc.nn fit epoch against a PyTorch loop (default all)")
    parser.add_argument("--threads", type=_positive_int, default=2,
                        help="threads of graphc and of every peer (OpenMP, BLAS, PyTorch, "
                             "XLA; default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="smallest cases only, no epoch suite (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per case; each peer's best round is kept "
                             "(default 3, 1 with --quick; CPU backend)")
    parser.add_argument("--out", default=None, help="also write the tables as markdown to "
                                                     "this file")


def run(args) -> int:
    from .. import benchmarking
    argv = ["--backend", args.backend, "--suite", args.suite, "--threads", str(args.threads)]
    if args.quick:
        argv.append("--quick")
    if args.out:
        argv += ["--out", args.out]
    if args.backend == "cuda":  # (--rounds is a CPU-suite option)
        from .. import benchmarking_gpu
        return benchmarking_gpu.main(argv[2:] + list(args.bench_args))
    if args.rounds is not None:
        argv += ["--rounds", str(args.rounds)]
    return benchmarking.main(argv + list(args.bench_args))
