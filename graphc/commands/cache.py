"""``graphc cache list|clear|prune|dir``: inspect, empty or prune the compile cache."""
from __future__ import annotations

import sys
import time

from ..runtime import cache, cache_limit


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=["list", "clear", "prune", "dir"],
                        help="list: the compiled modules and GEMM driver objects; clear: "
                             "delete them all; prune: delete the least recently used modules "
                             "beyond the size cap; dir: print the cache directory")
    parser.add_argument("--max-bytes", metavar="SIZE",
                        help="prune: the size to prune down to (bytes, or with a suffix K, M, "
                             "G, T: 500M, 2G; 0 removes every module not in use); default "
                             f"{cache_limit.ENV} or "
                             f"{cache_limit.format_size(cache_limit.DEFAULT_MAX_BYTES)}")


def _cap() -> str:
    return cache_limit.format_size(cache_limit.max_bytes())


def run(args) -> int:
    if args.max_bytes is not None and args.action != "prune":
        print("graphc cache: --max-bytes applies to prune only", file=sys.stderr)
        return 2
    try:
        if args.action == "prune":
            return _prune(args)
        if args.action == "list":
            return _list()
    except ValueError as e:  # a malformed size (GRAPHC_CACHE_MAX_BYTES or --max-bytes)
        print(f"graphc cache: {e}", file=sys.stderr)
        return 2
    if args.action == "dir":
        print(cache.cache_root())
        return 0
    n = cache.clear(core=True)
    print(f"removed {n} compiled module(s) from {cache.cache_root()} and the compiled GEMM "
          f"driver from {cache.core_dir()}")
    return 0


def _prune(args) -> int:
    limit = (cache_limit.parse_size(args.max_bytes, "--max-bytes")
             if args.max_bytes is not None else None)
    report = cache.prune(limit)
    for key, n in report.removed:
        print(f"  removed {key[:16]}  {n / 1024:8.1f} KiB")
    for key in report.skipped:
        print(f"  kept {key[:16]} (in use by another process)")
    fs = cache_limit.format_size
    print(f"removed {len(report.removed)} compiled module(s) from "
          f"{cache.cache_root() / 'kernels'}: {fs(report.before)} -> {fs(report.after)} "
          f"(cap {fs(report.max_bytes)})")
    return 0


def _list() -> int:
    entries = cache.list_entries()
    print(f"{len(entries)} compiled module(s) in {cache.cache_root() / 'kernels'}: "
          f"{cache_limit.format_size(cache.kernels_usage())} (cap {_cap()}, "
          f"{cache_limit.ENV})")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["mtime"]))
        print(f"  {e['key'][:16]}  {e['bytes'] / 1024:8.1f} KiB  {when}")
    cores = cache.core_objects()
    print(f"{len(cores)} compiled GEMM driver object(s) in {cache.core_dir()}")
    return 0
