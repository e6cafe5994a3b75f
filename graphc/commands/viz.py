"""``graphc viz``: export a saved model's training graph, or a graph JSON file, for viewing.

    graphc viz INPUT -o OUTPUT [--format dot|graphml|json|html|svg|png]

INPUT is a model directory written by ``model.save(path)`` (its training graph is built: the
forward pass on a batch placeholder, the loss, ``gc.grad`` of it and one SGD step's updates) or
a graph JSON file written by ``gc.export.to_json``.  The format comes from ``--format`` or the
output's extension (.dot/.gv, .graphml, .json, .html/.htm, .svg, .png); SVG and PNG need
Graphviz's ``dot`` program (exit code 2 with a message when it is missing).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

FORMATS = ("dot", "graphml", "json", "html", "svg", "png")
_EXT = {".dot": "dot", ".gv": "dot", ".graphml": "graphml", ".xml": "graphml", ".json": "json",
        ".html": "html", ".htm": "html", ".svg": "svg", ".png": "png"}


def add_arguments(p) -> None:
    p.add_argument("input", help="saved model directory (model.save) or graph JSON file "
                                 "(gc.export.to_json)")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: from the output file's extension)")
    p.add_argument("--loss", default="cross_entropy",
                   help="loss of a model's training graph (default: cross_entropy)")
    p.add_argument("--lr", type=float, default=0.01,
                   help="SGD learning rate of the training graph's update step (default 0.01)")
    p.add_argument("--no-updates", action="store_true",
                   help="for a model: export forward, loss and gradients without the SGD update")
    p.add_argument("--title", default=None, help="page title of an HTML export")


def _fail(msg: str, code: int = 2) -> int:
    print(f"graphc viz: {msg}", file=sys.stderr)
    return code


def _format_of(args) -> str | None:
    if args.format:
        return args.format
    return _EXT.get(os.path.splitext(args.output)[1].lower())


def _read_graph_json(path):
    from graphc.export import load_graph
    from graphc.export.json_io import MAX_TEXT
    size = os.path.getsize(path)
    if size > MAX_TEXT:
        raise ValueError(f"{path}: {size} bytes is more than a graph file may hold")
    with open(path, "rb") as f:
        data = f.read()
    g = load_graph(data)
    return g.outputs, g.inputs, g.updates


def _model_graph(args):
    try:
        import graphc.nn as nn
    except ImportError as e:
        raise ValueError(f"{args.input}: reading saved models needs graphc.nn ({e})") from None
    if not hasattr(nn, "load"):
        raise ValueError(f"{args.input}: this graphc has no gc.nn.load; pass a graph JSON file")
    model = nn.load(args.input)
    g = model.graph(loss=args.loss)
    outputs = [g["loss"]] + list(g["grads"])
    updates = [] if args.no_updates else [(p, p - args.lr * gr)
                                          for p, gr in zip(g["params"], g["grads"])]
    return outputs, list(g["inputs"]), updates


def _looks_like_graph_json(path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.lstrip().startswith("{") and '"graphc-graph"' in head


def run(args) -> int:
    fmt = _format_of(args)
    if fmt is None:
        return _fail(f"cannot tell the format of {args.output!r}; use --format "
                     f"({'|'.join(FORMATS)}) or an extension "
                     f"({', '.join(sorted(_EXT))})")
    if fmt in ("svg", "png") and shutil.which("dot") is None:
        return _fail(f"--format {fmt} needs Graphviz's 'dot' program, which is not installed "
                     f"(apt-get install graphviz); .dot, .graphml, .json and .html work "
                     f"without it")
    src = args.input
    if not os.path.exists(src):
        return _fail(f"{src}: no such file or directory")
    try:
        if os.path.isdir(src):
            outputs, inputs, updates = _model_graph(args)
        elif _looks_like_graph_json(src):
            outputs, inputs, updates = _read_graph_json(src)
        else:
            return _fail(f"{src}: neither a saved model directory nor a graphc graph JSON file")
    except ValueError as e:
        return _fail(str(e))

    from graphc import export
    out = args.output
    try:
        if fmt == "dot":
            _write_text(out, export.to_dot(outputs, inputs=inputs, updates=updates))
        elif fmt == "graphml":
            export.to_graphml(outputs, out, inputs=inputs, updates=updates)
        elif fmt == "json":
            _write_text(out, export.to_json(outputs, inputs=inputs, updates=updates))
        elif fmt == "html":
            export.to_html(outputs, out, inputs=inputs, updates=updates,
                           title=args.title or os.path.basename(os.path.normpath(src)))
        else:
            dot = export.to_dot(outputs, inputs=inputs, updates=updates)
            proc = subprocess.run(["dot", f"-T{fmt}", "-o", out], input=dot.encode("utf-8"),
                                  capture_output=True, timeout=600)
            if proc.returncode != 0:
                return _fail(f"dot failed (exit {proc.returncode}): "
                             f"{proc.stderr.decode('utf-8', 'replace').strip()[:2000]}", 1)
    except OSError as e:
        return _fail(f"cannot write {out}: {e}", 1)
    print(f"wrote {out} ({fmt})")
    return 0


def _write_text(path, text) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
