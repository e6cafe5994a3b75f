"""``graphc bench``: the benchmark tables (see graphc.benchmarking)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("bench_args", nargs="*", help="arguments of graphc.benchmarking")
    parser.add_argument("--backend", default="c", choices=["c", "cuda"])
    parser.add_argument("--suite", default="all", choices=["all", "dense", "train", "epoch"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per case; each peer's best round is kept "
                             "(default 3, 1 with --quick; CPU backend)")
    parser.add_argument("--out", default=None, help="markdown output file")


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
