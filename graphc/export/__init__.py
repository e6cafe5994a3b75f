"""Graph export: networkx, Graphviz DOT, GraphML, a versioned JSON round trip, and a
self-contained interactive HTML viewer.

Every exporter takes ``outputs`` as a tensor, a list of tensors, or a compiled function
(``gc.compile``'s result: its optimized program with updates and fused kernels).

- ``to_networkx(outputs)`` -> ``networkx.DiGraph`` (node attrs: op, raw_op, shape, dtype, name,
  role, kernel, where; edge attrs: shape, dtype, index)
- ``to_dot(outputs)`` -> DOT text; ``to_graphml(outputs, path)``
- ``to_json(outputs, inputs=None)`` / ``from_json(text)`` -> ``(inputs, outputs)``;
  ``load_graph(text)`` also gives back stored updates
- ``to_html(outputs, path)``: one file, no network access needed
"""
from .dot import to_dot
from .graph import ROLES, GraphView, collect, to_graphml, to_networkx
from .html import to_html
from .json_io import FORMAT, VERSION, LoadedGraph, from_json, load_graph, to_json

__all__ = ["to_networkx", "to_dot", "to_graphml", "to_json", "from_json", "load_graph",
           "to_html", "collect", "GraphView", "LoadedGraph", "ROLES", "FORMAT", "VERSION"]
