"""The ``graphc`` command line: one subcommand per module in ``graphc.commands``."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module in graphc.commands exposing add_arguments(parser) and run(args) -> int
COMMANDS = {
    "train": "Train an MLP (the main job)",
    "bench": "Benchmark the compiled backends against numpy, PyTorch and JAX",
    "viz": "Export a saved model or graph JSON to DOT, GraphML, JSON, HTML (SVG/PNG)",
    "cache": "List, clear or prune the compile cache, or print its directory",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphc", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(f"graphc.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"graphc.commands.{name}":
                raise
            p.set_defaults(_missing=name)
            continue
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"graphc {args._missing}: not available in this build", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
