"""``graphc cache list|clear``: inspect or empty the compile cache."""
from __future__ import annotations

import time

from ..runtime import cache


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=["list", "clear", "dir"],
                        help="list: the compiled modules and GEMM driver objects; clear: "
                             "delete them all; dir: print the cache directory")


def run(args) -> int:
    if args.action == "dir":
        print(cache.cache_root())
        return 0
    if args.action == "clear":
        n = cache.clear(core=True)
        print(f"removed {n} compiled module(s) from {cache.cache_root()} and the compiled GEMM "
              f"driver from {cache.core_dir()}")
        return 0
    entries = cache.list_entries()
    print(f"{len(entries)} compiled module(s) in {cache.cache_root() / 'kernels'}")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["mtime"]))
        print(f"  {e['key'][:16]}  {e['bytes'] / 1024:8.1f} KiB  {when}")
    cores = cache.core_objects()
    print(f"{len(cores)} compiled GEMM driver object(s) in {cache.core_dir()}")
    return 0
