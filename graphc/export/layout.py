"""A layered (Sugiyama-style) layout of a DAG, in plain Python, for the HTML viewer.

1. layers: longest path from the sources, then every node that is not a sink moved down to just
   above its first consumer (so parameters and ``W.T``-style helpers sit next to their use);
2. long edges are split by dummy nodes, one per layer crossed;
3. the order inside each layer comes from barycenter sweeps (down and up), keeping the order
   with the fewest crossings;
4. x coordinates: per layer, the positions closest (least squares) to the mean of each node's
   neighbours subject to the order and minimal gaps (isotonic regression, pool adjacent
   violators), alternating downward and upward passes.

``layout`` returns node centers and, for every edge, the points its curve passes through.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Layout:
    pos: dict        # node -> (x, y) center
    edges: dict      # (src, dst) -> [(x, y), ...] from src's bottom to dst's top
    width: float
    height: float
    layers: dict     # node -> layer index


def _layers(nodes, preds, succs) -> dict:
    layer = {}
    for n in nodes:  # topological order given
        layer[n] = 1 + max((layer[p] for p in preds[n]), default=-1)
    for n in reversed(nodes):
        if succs[n]:
            layer[n] = min(layer[s] for s in succs[n]) - 1
    return layer


def _crossings(upper_pos, lower, down_edges) -> int:
    """Crossings between two adjacent layers (edges given as lists per lower node)."""
    pairs = []
    for j, v in enumerate(lower):
        for u in down_edges.get(v, ()):
            pairs.append((upper_pos[u], j))
    pairs.sort()
    # count inversions in the second coordinate (merge sort)
    seq = [b for _, b in pairs]

    def count(a):
        if len(a) < 2:
            return a, 0
        mid = len(a) // 2
        left, x = count(a[:mid])
        right, y = count(a[mid:])
        merged, inv, i, j = [], x + y, 0, 0
        while i < len(left) and j < len(right):
            if left[i] <= right[j]:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                inv += len(left) - i
                j += 1
        merged += left[i:] + right[j:]
        return merged, inv

    return count(seq)[1]


def _isotonic(desired, weights, gaps):
    """x minimizing sum w (x - d)^2 with x[i+1] - x[i] >= gaps[i] (PAV on shifted targets)."""
    n = len(desired)
    offs = [0.0] * n
    for i in range(1, n):
        offs[i] = offs[i - 1] + gaps[i - 1]
    blocks = []  # [value, weight, count]
    for d, w, o in zip(desired, weights, offs):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out = []
    for v, _, c in blocks:
        out.extend([v] * c)
    return [y + o for y, o in zip(out, offs)]


#: dummy nodes for long edges: at most DUMMIES_PER_NODE per node (at least MAX_DUMMIES_MIN)
DUMMIES_PER_NODE = 2
MAX_DUMMIES_MIN = 4000


def layout(nodes, edges, sizes, layer_gap=24.0, node_gap=16.0, sweeps=8) -> Layout:
    """``nodes``: ids in topological order; ``edges``: (src, dst) pairs; ``sizes``: node ->
    (width, height)."""
    nodes = list(nodes)
    preds = {n: [] for n in nodes}
    succs = {n: [] for n in nodes}
    edges = [e for e in dict.fromkeys(edges) if e[0] in preds and e[1] in preds]
    for s, t in edges:
        preds[t].append(s)
        succs[s].append(t)
    layer = _layers(nodes, preds, succs)

    # dummy nodes for long edges
    down = {}    # lower node -> upper neighbours
    up = {}      # upper node -> lower neighbours
    chains = {}  # edge -> [src, dummies..., dst]
    width_of = {n: sizes[n][0] for n in nodes}
    dummy = 0
    # Dummies cost time and page size in proportion to the layers an edge crosses: in a deep
    # network's gradient graph each weight feeds its forward matmul near the top and the
    # ``W.T`` of its gradient near the bottom, so n layers give n edges of span ~2n (n**2
    # dummies).  The shortest edges get dummies up to a budget linear in the graph; longer
    # ones are drawn directly from source to destination and take no part in the ordering.
    budget = max(MAX_DUMMIES_MIN, DUMMIES_PER_NODE * len(nodes))
    routed = set()
    for s, t in sorted(edges, key=lambda e: layer[e[1]] - layer[e[0]]):
        span = max(layer[t] - layer[s] - 1, 0)
        if span > budget:
            break
        budget -= span
        routed.add((s, t))
    for s, t in edges:
        if (s, t) not in routed:
            chains[(s, t)] = [s, t]
            continue
        chain = [s]
        for _ in range(layer[s] + 1, layer[t]):
            d = ("d", dummy)
            dummy += 1
            layer[d] = layer[chain[-1]] + 1
            width_of[d] = 6.0
            chain.append(d)
        chain.append(t)
        chains[(s, t)] = chain
        for a, b in zip(chain, chain[1:]):
            down.setdefault(b, []).append(a)
            up.setdefault(a, []).append(b)
    nlayers = 1 + max(layer.values(), default=0)
    rows = [[] for _ in range(nlayers)]
    seen = set()

    def place(v):  # initial order: DFS from the sources, following edges
        stack = [v]
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            rows[layer[x]].append(x)
            stack.extend(reversed(up.get(x, [])))

    for n in nodes:
        if not preds[n]:
            place(n)
    for n in nodes:
        place(n)

    def positions(row):
        return {v: i for i, v in enumerate(row)}

    def total_crossings(rs):
        return sum(_crossings(positions(rs[i - 1]), rs[i], down) for i in range(1, len(rs)))

    big = len(layer) > 20000
    best = [list(r) for r in rows]
    best_c = total_crossings(rows) if not big else 0
    for it in range(0 if big else sweeps):
        if it % 2 == 0:
            rng, nbr = range(1, nlayers), down
        else:
            rng, nbr = range(nlayers - 2, -1, -1), up
        for i in rng:
            ref = positions(rows[i - 1] if it % 2 == 0 else rows[i + 1])
            cur = positions(rows[i])

            def key(v):
                ns = [ref[u] for u in nbr.get(v, ()) if u in ref]
                return (sum(ns) / len(ns)) if ns else cur[v]
            rows[i].sort(key=key)
        c = total_crossings(rows)
        if c < best_c:
            best_c, best = c, [list(r) for r in rows]
    rows = best

    # y: one band per layer, as tall as its tallest node
    heights = [max((sizes[v][1] for v in r if v in sizes), default=0) for r in rows]
    ys, y = [], 0.0
    for h in heights:
        ys.append(y + h / 2)
        y += h + layer_gap
    height = max(y - layer_gap, 0.0)

    x = {}
    for r in rows:
        cur = 0.0
        for v in r:
            x[v] = cur + width_of[v] / 2
            cur += width_of[v] + node_gap

    def relax(i, nbr):
        r = rows[i]
        if not r:
            return
        desired, weights = [], []
        for v in r:
            ns = [x[u] for u in nbr.get(v, ())]
            desired.append(sum(ns) / len(ns) if ns else x[v])
            weights.append((4.0 if isinstance(v, tuple) else 1.0) * (1.0 if ns else 0.2))
        gaps = [(width_of[a] + width_of[b]) / 2 + (node_gap if not (isinstance(a, tuple) and
                                                                    isinstance(b, tuple)) else 6)
                for a, b in zip(r, r[1:])]
        for v, nx in zip(r, _isotonic(desired, weights, gaps)):
            x[v] = nx

    total = len(layer)  # nodes and dummies: fewer passes on big graphs
    for _ in range(6 if total < 5000 else (2 if total < 50000 else 0)):
        for i in range(1, nlayers):
            relax(i, down)
        for i in range(nlayers - 2, -1, -1):
            relax(i, up)
    for i in range(1, nlayers):
        relax(i, down)
    minx = min((x[v] - width_of[v] / 2 for v in x), default=0.0)
    maxx = max((x[v] + width_of[v] / 2 for v in x), default=0.0)
    pos = {n: (round(x[n] - minx, 1), round(ys[layer[n]], 1)) for n in nodes}
    out_edges = {}
    for (s, t), chain in chains.items():
        pts = [(round(x[v] - minx, 1), round(ys[layer[v]], 1)) for v in chain]
        sx, sy = pts[0]
        tx, ty = pts[-1]
        pts[0] = (sx, round(sy + sizes[s][1] / 2, 1))
        pts[-1] = (tx, round(ty - sizes[t][1] / 2, 1))
        out_edges[(s, t)] = pts
    return Layout(pos, out_edges, round(maxx - minx, 1), round(height, 1),
                  {n: layer[n] for n in nodes})
