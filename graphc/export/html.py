"""``to_html``: one self-contained interactive page (inline CSS and JS, no network access).

The layered layout is computed here in Python (``layout.py``); the page's script
(``viewer_assets.py``) draws it as SVG with pan and zoom, search, a details panel, role
toggles, fused-kernel boxes and a step-through of Algorithm 6.2's grad_table walk.
"""
from __future__ import annotations

import html as _html
import json
import os
import re

from ..ir import format_shape
from . import viewer_assets
from .graph import GraphView, collect, display_name, node_label
from .gradwalk import grad_walk
from .layout import layout

NODE_H = 30.0
MAX_TEXT = 28  # characters shown in a box (the details panel has everything)


def _clip(s: str, n: int = MAX_TEXT) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _box_text(n, role):
    name = display_name(n)
    shape = format_shape(n.shape) + ("" if n.dtype == "float32" else " " + n.dtype)
    if role in ("parameter", "input") and name:
        return _clip(name), _clip(shape)
    l1 = node_label(n)
    if n.op == "constant" and n.attrs["value"].size == 1:
        l1 = "const " + _clip(repr(n.attrs["value"].reshape(()).item()), 12)
    l2 = (name + " " if name and name != l1 else "") + shape
    return _clip(l1), _clip(l2)


def _width(l1: str, l2: str) -> float:
    return max(64.0, min(230.0, 16 + max(len(l1) * 7.4, len(l2) * 6.1)))


def graph_data(view: GraphView, title: str = "graphc graph") -> dict:
    """The JSON the viewer draws: nodes with positions, edges with curve points, kernels and
    the grad_table walk."""
    out_ids = {o.id for o in view.outputs}
    writes = {v.id: p for p, v in view.updates}
    sizes, texts = {}, {}
    for n in view.nodes:
        l1, l2 = _box_text(n, view.roles[n.id])
        texts[n.id] = (l1, l2)
        sizes[n.id] = (_width(l1, l2), NODE_H)
    edges = []
    for n in view.nodes:
        for i in n.inputs:
            edges.append((i.id, n.id))
    lay = layout([n.id for n in view.nodes], edges, sizes)
    nodes = []
    for n in view.nodes:
        x, y = lay.pos[n.id]
        l1, l2 = texts[n.id]
        expr = None
        if n.op == "ew":
            try:
                expr = _clip(str(n.attrs["expr"]), 400)
            except Exception:
                expr = None
        nodes.append({
            "id": n.id, "l1": l1, "l2": l2, "op": node_label(n), "raw_op": n.op, "name": n.name,
            "shape": format_shape(n.shape), "dtype": n.dtype, "role": view.roles[n.id],
            "kernel": view.kernels.get(n.id), "where": n.where, "expr": expr,
            "inputs": [i.id for i in n.inputs], "output": n.id in out_ids,
            "updates": writes[n.id].name if n.id in writes else None,
            "x": x, "y": y, "w": sizes[n.id][0], "h": sizes[n.id][1],
        })
    by_id = view.by_id
    edge_list = [{"s": s, "t": t, "shape": format_shape(by_id[s].shape), "pts": pts}
                 for (s, t), pts in lay.edges.items()]
    kernels: dict = {}
    for n in view.nodes:
        k = view.kernels.get(n.id)
        if k is not None:
            kernels.setdefault(k, []).append(n.id)
    return {
        "title": title, "width": lay.width, "height": lay.height, "nodes": nodes,
        "edges": edge_list, "kernels": [{"name": k, "members": m} for k, m in kernels.items()],
        "steps": grad_walk(view),
    }


def script_json(obj) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JS
    line separators escaped as \\uXXXX (valid JSON, cannot close the script element)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # lone surrogates (inside strings only; a name decoded with surrogateescape) as U+FFFD, as
    # in GraphML: the page only shows text, and a lone surrogate in the DOM crashed Chromium
    # when it serialized the page (--dump-dom: SIGILL)
    text = re.sub("[\ud800-\udfff]", "\ufffd", text)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<div id="bar">
  <h1>{title}</h1>
  <span class="group"><input id="search" type="search" placeholder="search name or op"
    autocomplete="off"><span id="match-count"></span></span>
  <span class="group">
    <label><input type="checkbox" id="show-forward" checked> forward</label>
    <label><input type="checkbox" id="show-backward" checked> backward</label>
    <label><input type="checkbox" id="show-update" checked> update</label>
  </span>
  <span class="group"><button id="step" type="button">step</button>
    <button id="reset" type="button">reset</button>
    <button id="fit" type="button">fit</button></span>
  <span id="status"></span>
</div>
<div id="main">
  <svg id="canvas"><g id="viewport"><g id="kernels"></g><g id="edges"></g><g id="nodes"></g></g></svg>
  <div id="side">
    <div id="details"></div>
    <div id="legend">
      <div><span class="sw" style="background:#e0e0e0;border-color:#616161"></span>input</div>
      <div><span class="sw" style="background:#fff3b0;border-color:#b08900"></span>parameter</div>
      <div><span class="sw" style="background:#ffffff;border-color:#9e9e9e"></span>constant</div>
      <div><span class="sw" style="background:#cfe3ff;border-color:#2b6cb0"></span>forward</div>
      <div><span class="sw" style="background:#ffd8c2;border-color:#c0562b"></span>backward (gradient)</div>
      <div><span class="sw" style="background:#c9f0cf;border-color:#2f855a"></span>update</div>
      <div>{summary}</div>
      <div>Wheel: zoom. Drag: pan. Click: details.</div>
    </div>
  </div>
</div>
<pre id="selftest-result"></pre>
<script type="application/json" id="graph-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""


def render_html(outputs, inputs=None, updates=None, kernels=None, title=None) -> str:
    """The page as text (``to_html`` writes it to a file)."""
    view = outputs if isinstance(outputs, GraphView) else collect(outputs, inputs, updates,
                                                                  kernels)
    title = title or "graphc graph"
    data = graph_data(view, title)
    counts: dict = {}
    for r in view.roles.values():
        counts[r] = counts.get(r, 0) + 1
    summary = f"{len(view.nodes)} nodes: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return PAGE.format(title=_html.escape(title), css=viewer_assets.CSS,
                       js=viewer_assets.JS.replace("</", "<\\/"), data=script_json(data),
                       summary=_html.escape(summary))


def to_html(outputs, path, inputs=None, updates=None, kernels=None, title=None) -> str:
    """Write the interactive viewer page for ``outputs`` (a tensor, a list, or a compiled
    function) to ``path``; returns ``path``."""
    text = render_html(outputs, inputs, updates, kernels, title)
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)
    return path
