"""Graphviz DOT text: roles as fill colors, fused kernels as clusters, shapes on edges.

Every identifier is generated (``n<id>``, ``cluster_<k>``); user text (names, labels, source
lines) only appears inside double-quoted strings, escaped, so hostile names give valid DOT.
"""
from __future__ import annotations

from ..ir import format_shape
from .graph import GraphView, collect, display_name, node_label

ROLE_STYLE = {  # fill color, border color
    "input": ("#e0e0e0", "#616161"),
    "parameter": ("#fff3b0", "#b08900"),
    "constant": ("#ffffff", "#9e9e9e"),
    "forward": ("#cfe3ff", "#2b6cb0"),
    "backward": ("#ffd8c2", "#c0562b"),
    "update": ("#c9f0cf", "#2f855a"),
}


MAX_LINE = 200  # characters of one label line: graphviz rejects very long labels


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


def quote(text) -> str:
    """``text`` as a DOT double-quoted string: backslashes and quotes escaped, newlines as
    DOT's ``\\n`` line break, other control characters dropped, each line cut to MAX_LINE
    characters (node ids, not labels, identify nodes, so clipped labels may repeat)."""
    s = "\n".join(_clip(line) for line in str(text).split("\n"))
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch < " " or ch == "\x7f" or ch in "\u2028\u2029":
            out.append(" ")
        elif "\ud800" <= ch <= "\udfff":  # a lone surrogate cannot be written as UTF-8
            out.append("\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _label_lines(n, role) -> list:
    name = display_name(n)
    head = node_label(n)
    if role in ("parameter", "input") and name:
        return [name, format_shape(n.shape)]
    lines = [head]
    if name and name != head:
        lines.append(name)
    lines.append(format_shape(n.shape) + ("" if n.dtype == "float32" else " " + n.dtype))
    return lines


def to_dot(outputs, inputs=None, updates=None, kernels=None, rankdir="TB") -> str:
    """Readable DOT text of the graph (see ``to_networkx`` for what ``outputs`` may be)."""
    view = outputs if isinstance(outputs, GraphView) else collect(outputs, inputs, updates,
                                                                  kernels)
    out_ids = {o.id for o in view.outputs}
    writes = {v.id: p for p, v in view.updates}
    lines = [
        "digraph graphc {",
        f"  graph [rankdir={'LR' if rankdir == 'LR' else 'TB'}, fontname=\"Helvetica\", "
        "fontsize=10, nodesep=0.25, ranksep=0.35];",
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10, "
        "height=0.3, margin=\"0.08,0.03\"];",
        "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\", "
        "fontcolor=\"#555555\", arrowsize=0.6];",
    ]

    def node_stmt(n, indent="  "):
        role = view.roles[n.id]
        fill, border = ROLE_STYLE.get(role, ROLE_STYLE["forward"])
        label = "\n".join(_label_lines(n, role))
        tooltip = f"{n.name}: {node_label(n)} {format_shape(n.shape)} {n.dtype} [{role}] " \
                  f"at {n.where}"
        extra = ""
        if n.id in out_ids:
            extra += ", penwidth=2.2"
        if n.op == "constant":
            extra += ", shape=ellipse"
        return (f"{indent}n{n.id} [label={quote(label)}, fillcolor=\"{fill}\", "
                f"color=\"{border}\", tooltip={quote(tooltip)}{extra}];")

    clusters: dict = {}
    for n in view.nodes:
        k = view.kernels.get(n.id)
        if k is not None:
            clusters.setdefault(k, []).append(n)
    in_cluster = set()
    for ci, (kname, members) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{ci} {{")
        lines.append(f"    label={quote('kernel ' + kname)}; style=\"dashed,rounded\"; "
                     "color=\"#7a7a7a\"; fontsize=9;")
        for n in members:
            lines.append(node_stmt(n, "    "))
            in_cluster.add(n.id)
        lines.append("  }")
    for n in view.nodes:
        if n.id not in in_cluster:
            lines.append(node_stmt(n))
    for n in view.nodes:
        seen = set()
        for k, i in enumerate(n.inputs):
            if i.id in seen:
                continue
            seen.add(i.id)
            lines.append(f"  n{i.id} -> n{n.id} [label={quote(format_shape(i.shape))}];")
    for vid, p in writes.items():
        lines.append(f"  n{vid} -> n{p.id} [style=dashed, color=\"#2f855a\", constraint=false, "
                     f"label={quote('new ' + p.name)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
