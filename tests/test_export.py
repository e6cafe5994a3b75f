"""Graph export: networkx, DOT, GraphML, the JSON round trip (and its hostile inputs), HTML,
and the ``graphc viz`` command."""
import base64
import json
import re
import shutil

import numpy as np
import pytest
import sympy as sp

import graphc as gc
from graphc import export
from graphc.cli import main as cli_main
from graphc.export import exprcodec
from graphc.ops.elementwise import ELEMENTWISE
from graphc.symbolic import A

HOSTILE = 'a"b\\n</script><script>alert(1)</script>\n<b>&amp;\u2028'


def mlp_graph(seed=0, sizes=(784, 64, 32, 10)):
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, sizes[0]), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    params, h = [], x
    for i in range(3):
        W = gc.parameter(rng.standard_normal((sizes[i], sizes[i + 1])).astype("float32") * 0.05,
                         name=f"W{i + 1}")
        b = gc.parameter(np.zeros(sizes[i + 1], "float32"), name=f"b{i + 1}")
        params += [W, b]
        h = h @ W + b
        if i < 2:
            h = gc.relu(h)
    loss = gc.cross_entropy(h, y)
    grads = gc.grad(loss, params)
    updates = [(p, p - 0.1 * g) for p, g in zip(params, grads)]
    return x, y, loss, params, grads, updates


@pytest.fixture(scope="module")
def mlp():
    return mlp_graph(sizes=(20, 16, 8, 5))


def batch(n=6, d=20, c=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype("float32"), rng.integers(0, c, n)


# -- networkx ---------------------------------------------------------------------------------

def test_networkx_nodes_attributes_and_roles(mlp):
    from graphc.ir import toposort
    x, y, loss, params, grads, updates = mlp
    g = export.to_networkx([loss] + grads, updates=updates)
    order = toposort([loss] + grads + [v for _, v in updates])
    assert g.number_of_nodes() == len(order)
    assert set(g.nodes) == {n.id for n in order}
    a = g.nodes[x.id]
    assert (a["role"], a["op"], a["shape"], a["dtype"], a["name"]) == \
        ("input", "placeholder", (None, 20), "float32", "x")
    assert a["where"].split(":")[0].endswith("test_export.py")
    assert g.nodes[params[0].id]["role"] == "parameter"
    assert g.nodes[loss.id]["role"] == "forward"
    relus = [n for n, d in g.nodes(data=True) if d["op"] == "relu"]
    assert len(relus) == 2 and all(g.nodes[n]["raw_op"] == "ew" for n in relus)
    assert all(g.nodes[n]["role"] == "forward" for n in relus)
    assert all(g.nodes[gr.id]["role"] == "backward" for gr in grads)
    assert any(d["op"] == "relu'" and d["role"] == "backward" for _, d in g.nodes(data=True))
    for p, v in updates:
        assert g.nodes[v.id]["role"] == "update" and g.nodes[v.id]["updates"] == p.name
        lr_g = [i for i in v.inputs if i is not p][0]
        assert g.nodes[lr_g.id]["role"] == "update"  # the lr * g step
    roles = {d["role"] for _, d in g.nodes(data=True)}
    assert roles == {"input", "parameter", "forward", "backward", "update"}
    scaled = gc.mul(loss, gc.constant(np.float32(2.0)))  # a constant has its own role
    g2 = export.to_networkx([scaled])
    assert {d["role"] for _, d in g2.nodes(data=True)} >= {"constant", "forward"}
    # edges carry the flowing tensor's shape and the input position
    W1 = params[0]
    mm = [n for n in g.successors(x.id) if g.nodes[n]["raw_op"] == "matmul"][0]
    assert g.edges[W1.id, mm]["shape"] == (20, 16) and g.edges[W1.id, mm]["index"] == 1
    assert g.edges[x.id, mm]["index"] == 0
    import networkx as nx
    assert nx.is_directed_acyclic_graph(g)


def test_roles_forward_only_and_compiled(mlp):
    x, y, loss, params, grads, updates = mlp
    g = export.to_networkx(loss)
    assert {d["role"] for _, d in g.nodes(data=True)} == {"input", "parameter", "forward"}
    f = gc.compile([x, y], [loss], updates=updates)
    g2 = export.to_networkx(f)
    roles = [d["role"] for _, d in g2.nodes(data=True)]
    assert roles.count("update") >= len(updates) and "backward" in roles
    assert g2.graph["outputs"] == [o.id for o in f.program.outputs]


def test_kernels_mapping_and_compiled_kernel_of(mlp):
    x, y, loss, params, grads, updates = mlp
    h = loss.inputs[0]
    g = export.to_networkx(loss, kernels={h.id: "k0_xent", loss.id: "k0_xent"})
    assert g.nodes[loss.id]["kernel"] == "k0_xent" and g.nodes[x.id]["kernel"] is None
    dot = export.to_dot(loss, kernels={h.id: "k0_xent", loss.id: "k0_xent"})
    assert "subgraph cluster_0" in dot and '"kernel k0_xent"' in dot

    f = gc.compile([x, y], [loss], backend="numpy")

    class Exe:  # what a fusing backend exposes
        kernel_of = {f.program.outputs[0].id: "k7_mean"}
    f._exe = Exe()
    g = export.to_networkx(f)
    assert g.nodes[f.program.outputs[0].id]["kernel"] == "k7_mean"


def test_effects_roles_batch_norm_dropout():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 4), name="x")
    W = gc.parameter(rng.standard_normal((4, 3)).astype("float32"), name="W")
    gamma = gc.parameter(np.ones(3, "float32"), name="gamma")
    beta = gc.parameter(np.zeros(3, "float32"), name="beta")
    rm = gc.parameter(np.zeros(3, "float32"), name="rm", trainable=False)
    rv = gc.parameter(np.ones(3, "float32"), name="rv", trainable=False)
    h = gc.batch_norm(x @ W, gamma, beta, rm, rv, training=True)
    h = gc.dropout(gc.relu(h), 0.5, training=True, seed=3)
    loss = gc.mean(gc.square(h))
    ps = [W, gamma, beta]
    grads = gc.grad(loss, ps)
    ups = [(p, p - 0.1 * g) for p, g in zip(ps, grads)]
    g = export.to_networkx([loss], updates=ups)
    targets = {d["updates"] for _, d in g.nodes(data=True) if d["updates"]}
    assert targets == {"W", "gamma", "beta", "rm", "rv", "dropout_counter"}
    # gamma * g in batch norm's backward pass is a gradient, not an update
    assert all(d["role"] != "update" for n, d in g.nodes(data=True)
               if gamma.id in g.predecessors(n) and d["updates"] is None
               and any(g.nodes[m]["role"] == "backward" for m in g.predecessors(n)))


# -- DOT and GraphML --------------------------------------------------------------------------

def test_dot_parses_and_escapes_hostile_names(mlp):
    pydot = pytest.importorskip("pydot")
    x, y, loss, params, grads, updates = mlp
    p = gc.parameter(np.ones(3, "float32"), name=HOSTILE)
    q = gc.placeholder((3,), name='x\\"; n0 -> n1; //')
    out = gc.sum(gc.relu(p * q))
    out.name = "back\\slash\\"
    for outputs, kw in ((out, {}), ([loss] + grads, {"updates": updates})):
        text = export.to_dot(outputs, **kw)
        graphs = pydot.graph_from_dot_data(text)
        assert graphs and len(graphs) == 1
        ids = {n.get_name() for n in graphs[0].get_nodes()} - {"node", "edge", "graph"}
        assert len(ids) == len(export.to_networkx(outputs, **kw))
    text = export.to_dot(out)
    assert "\n<b>" not in text and "\u2028" not in text
    labels = [n.get_label() for n in pydot.graph_from_dot_data(text)[0].get_nodes()]
    assert any(lab and "alert(1)" in lab for lab in labels)
    if shutil.which("dot"):
        import subprocess
        r = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True)
        assert r.returncode == 0, r.stderr


def test_dot_readable_labels(mlp):
    x, y, loss, params, grads, updates = mlp
    text = export.to_dot([loss] + grads, updates=updates)
    assert 'label="relu\\n(None, 16)"' in text
    assert 'label="W1\\n(20, 16)"' in text
    assert "(None, 16)" in text and "style=dashed" in text


def test_graphml_round_trip(tmp_path, mlp):
    import networkx as nx
    x, y, loss, params, grads, updates = mlp
    path = tmp_path / "g.graphml"
    export.to_graphml([loss] + grads, path, updates=updates)
    h = nx.read_graphml(path)
    g = export.to_networkx([loss] + grads, updates=updates)
    assert h.number_of_nodes() == g.number_of_nodes()
    assert h.number_of_edges() == g.number_of_edges()
    a = h.nodes[str(x.id)]
    assert a["shape"] == "(None, 20)" and a["role"] == "input" and a["op"] == "placeholder"
    assert {d["role"] for _, d in h.nodes(data=True)} == {d["role"] for _, d in g.nodes(data=True)}


# -- JSON round trip --------------------------------------------------------------------------

def _run(inputs, outputs, feeds):
    return gc.compile(inputs, outputs, backend="numpy")(*feeds)


def test_json_round_trip_forward_and_gradients(mlp):
    x, y, loss, params, grads, updates = mlp
    text = export.to_json([loss] + grads, inputs=[x, y])
    doc = json.loads(text)
    assert (doc["format"], doc["version"]) == ("graphc-graph", 1)
    ins, outs = export.from_json(text)
    assert [p.name for p in ins] == ["x", "y"] and [p.shape for p in ins] == [x.shape, y.shape]
    assert [o.shape for o in outs] == [o.shape for o in [loss] + grads]
    X, Y = batch()
    want = _run([x, y], [loss] + grads, (X, Y))
    got = _run(ins, outs, (X, Y))
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    # parameters: values, names, trainable; source lines kept
    from graphc.ir import toposort
    loaded = {n.name: n for n in toposort(outs) if n.op == "parameter"}
    for p in params:
        np.testing.assert_array_equal(loaded[p.name].value, p.value)
        assert loaded[p.name].trainable and loaded[p.name].where == p.where
    # a loaded graph can be exported again to the same text
    assert export.to_json(outs, inputs=ins) == text


def test_json_round_trip_second_order_and_inputs_default():
    x = gc.placeholder((3,), "float64", name="x")
    c = gc.constant(np.array([1.0, -2.0, 0.5]), name="c")
    f = gc.sum(gc.tanh(x) * c + gc.sigmoid(x) ** 3 + gc.gelu(x, approximate="tanh"))
    g = gc.grad(f, x)
    h = gc.grad(gc.sum(g * g), x)
    ins, outs = export.from_json(export.to_json([f, g, h]))
    assert [p.name for p in ins] == ["x"]
    X = np.array([0.3, -1.2, 2.0])
    for a, b in zip(_run([x], [f, g, h], (X,)), _run(ins, outs, (X,))):
        np.testing.assert_allclose(a, b, rtol=0, atol=0)


def test_json_round_trip_updates_and_effects():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 4), name="x")
    W = gc.parameter(rng.standard_normal((4, 3)).astype("float32"), name="W")
    gamma = gc.parameter(np.ones(3, "float32"), name="gamma")
    beta = gc.parameter(np.zeros(3, "float32"), name="beta")
    rm = gc.parameter(np.zeros(3, "float32"), name="rm", trainable=False)
    rv = gc.parameter(np.ones(3, "float32"), name="rv", trainable=False)
    h = gc.batch_norm(x @ W, gamma, beta, rm, rv, training=True)
    out = gc.dropout(gc.relu(h), 0.5, training=True, seed=7)
    loss = gc.mean(gc.square(out))
    (gW,) = gc.grad(loss, [W])
    text = export.to_json([loss, out], inputs=[x], updates=[(W, W - 0.5 * gW)])
    g = export.load_graph(text)
    assert [(p.name, p.trainable) for p, _ in g.updates] == [("W", True)]
    f1 = gc.compile([x], [loss, out], updates=[(W, W - 0.5 * gW)])
    f2 = gc.compile(g.inputs, g.outputs, updates=g.updates)
    from graphc.ir import toposort
    stats = {n.name: n for n in toposort([v for _, v in g.updates] + g.outputs)
             + [p for n in toposort(g.outputs) for p, _ in n.effects] if n.op == "parameter"}
    X = rng.standard_normal((5, 4)).astype("float32")
    for _ in range(2):  # twice: dropout masks advance, running stats and W move
        a, b = f1(X), f2(X)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(stats["rm"].value, rm.value)
    np.testing.assert_array_equal(stats["rv"].value, rv.value)
    np.testing.assert_array_equal(stats["W"].value, W.value)
    assert not np.array_equal(rm.value, np.zeros(3))


def test_json_compiled_function_and_values(mlp):
    x, y, loss, params, grads, updates = mlp
    f = gc.compile([x, y], [loss], updates=updates)
    g = export.load_graph(export.to_json(f))
    assert len(g.updates) == len(updates) and [p.name for p in g.inputs] == ["x", "y"]
    X, Y = batch()
    np.testing.assert_array_equal(_run(g.inputs, g.outputs, (X, Y))[0],
                                  _run([x, y], [loss], (X, Y))[0])


def test_expression_codec_round_trips_every_elementwise_op():
    n = 0
    for spec in ELEMENTWISE.values():
        for params in spec.params:
            e = sp.sympify(spec.fn(*A[:spec.arity], **params))
            for ex in [e] + [sp.diff(e, a) for a in A[:spec.arity]]:
                back = exprcodec.decode(json.loads(json.dumps(exprcodec.encode(ex))))
                assert back == ex and hash(back) == hash(ex), (spec.name, ex, back)
                n += 1
    assert n > 50
    for v in (float("inf"), float("-inf"), float("nan"), 0.0, 1e-300, -2.5):
        f = sp.Float(v)
        assert str(exprcodec.decode(exprcodec.encode(f))) == str(f)


# -- hostile JSON -----------------------------------------------------------------------------

def _small_doc():
    x = gc.placeholder((None, 3), name="x")
    p = gc.parameter(np.arange(6, dtype="float32").reshape(3, 2), name="p")
    out = gc.sum(gc.relu(x @ p), axis=1)
    return json.loads(export.to_json(out))


def _node(doc, op):
    return next(n for n in doc["nodes"] if n["op"] == op)


def _mutations():
    def m(fn):
        doc = _small_doc()
        fn(doc)
        return json.dumps(doc)

    ew_expr = lambda d: _node(d, "ew")["attrs"]["expr"]  # noqa: E731
    yield "unknown op", m(lambda d: _node(d, "matmul").update(op="os.system"))
    yield "cycle", m(lambda d: _node(d, "matmul").update(inputs=[0, len(d["nodes"]) - 1]))
    yield "self reference", m(lambda d: _node(d, "matmul").update(
        inputs=[0, _node(d, "matmul")["id"]]))
    yield "unknown id", m(lambda d: d.update(outputs=[12345]))
    yield "bad shape", m(lambda d: _node(d, "matmul").update(shape=[None, 99]))
    yield "negative dim", m(lambda d: _node(d, "placeholder").update(shape=[-1, 3]))
    yield "shape of strings", m(lambda d: _node(d, "placeholder").update(shape=["3"]))
    yield "inconsistent matmul", m(lambda d: _node(d, "parameter")["attrs"]["value"][
        "$array"].update(shape=[2, 3]))
    yield "wrong type nodes", m(lambda d: d.update(nodes={"a": 1}))
    yield "wrong type node", m(lambda d: d["nodes"].append("node"))
    yield "wrong type id", m(lambda d: _node(d, "matmul").update(id="7"))
    yield "bool id", m(lambda d: d.update(outputs=[True]))
    yield "float input ref", m(lambda d: _node(d, "matmul").update(inputs=[0.0, 1]))
    yield "duplicate id", m(lambda d: d["nodes"].append(dict(d["nodes"][0])))
    yield "bad dtype", m(lambda d: _node(d, "placeholder").update(dtype="object"))
    yield "bad version", m(lambda d: d.update(version=2))
    yield "bad format", m(lambda d: d.update(format="pickle"))
    yield "bad axes", m(lambda d: _node(d, "sum")["attrs"].update(axes=["1"]))
    yield "axis out of range", m(lambda d: _node(d, "sum")["attrs"].update(axes=[5]))
    yield "missing attr", m(lambda d: _node(d, "sum")["attrs"].pop("keepdims"))
    yield "reserved attr", m(lambda d: _node(d, "sum")["attrs"].update(inputs=[1]))
    yield "object attr", m(lambda d: _node(d, "sum")["attrs"].update(
        extra={"__class__": "os.system"}))
    yield "huge claimed size", m(lambda d: _node(d, "parameter")["attrs"]["value"][
        "$array"].update(shape=[10 ** 9, 10 ** 9]))
    yield "huge placeholder", m(lambda d: _node(d, "placeholder").update(shape=[None, 10 ** 30]))
    yield "byte length", m(lambda d: _node(d, "parameter")["attrs"]["value"]["$array"].update(
        data=base64.b64encode(b"\0" * 20).decode()))
    yield "bad base64", m(lambda d: _node(d, "parameter")["attrs"]["value"]["$array"].update(
        data="!" * 32))
    yield "value dtype mismatch", m(lambda d: _node(d, "parameter")["attrs"]["value"][
        "$array"].update(dtype="int32"))
    yield "trainable not bool", m(lambda d: _node(d, "parameter")["attrs"].update(trainable="yes"))
    yield "leaf with inputs", m(lambda d: _node(d, "parameter").update(inputs=[0]))
    yield "srepr string expr", m(lambda d: _node(d, "ew")["attrs"].update(
        expr="__import__('os').system('echo pwned')"))
    yield "srepr in $expr", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": "Symbol('a0', real=True)"}))
    yield "import function", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"f": "__import__", "args": [{"int": "1"}]}}))
    yield "eval function", m(lambda d: ew_expr(d)["$expr"].update(f="eval"))
    yield "sympify", m(lambda d: ew_expr(d)["$expr"].update(f="sympify"))
    yield "symbol out of range", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"sym": 40}}))
    yield "symbol beyond inputs", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"sym": 3}}))
    yield "python int code", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"int": "__import__('os')"}}))
    yield "huge integer", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"int": "9" * 5000}}))
    yield "wrong arity", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"f": "Pow", "args": [{"sym": 0}]}}))
    yield "bad float", m(lambda d: _node(d, "ew")["attrs"].update(
        expr={"$expr": {"float": [0, "5", 10 ** 9, 3], "prec": 53}}))
    yield "nan literal", m(lambda d: d.update(outputs=[float("nan")])).replace("NaN", "NaN")
    yield "top-level list", "[1, 2, 3]"
    yield "not json", "{'format': 'graphc-graph'}"
    yield "empty", ""
    text = m(lambda d: None)
    yield "truncated", text[: len(text) // 2]
    yield "deeply nested list", "[" * 100000 + "]" * 100000
    yield "deeply nested in a node", text.replace('"attrs": {}', '"attrs": {"x": ' + "[" * 50000 +
                                                  "]" * 50000 + "}", 1)
    deep = {"sym": 0}
    for _ in range(300):
        deep = {"f": "exp", "args": [deep]}
    yield "deep expression", m(lambda d: _node(d, "ew")["attrs"].update(expr={"$expr": deep}))
    yield "bytes not utf-8", b"\xff\xfe{"


@pytest.mark.parametrize("name,text", list(_mutations()), ids=[n for n, _ in _mutations()])
def test_hostile_json_raises_value_error(name, text):
    with pytest.raises(ValueError):
        export.from_json(text)


def test_hostile_json_is_not_evaluated(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    doc = _small_doc()
    payload = f"__import__('os').system('touch {marker}')"
    _node(doc, "ew")["attrs"]["expr"] = {"$expr": payload}
    for text in (json.dumps(doc), json.dumps(doc).replace('"$expr"', '"srepr"')):
        with pytest.raises(ValueError):
            export.from_json(text)
    assert not marker.exists()


def test_small_doc_is_valid():
    ins, outs = export.from_json(json.dumps(_small_doc()))
    assert len(ins) == 1 and outs[0].shape == (None,)


def test_text_too_long(monkeypatch):
    from graphc.export import json_io
    monkeypatch.setattr(json_io, "MAX_TEXT", 100)
    with pytest.raises(ValueError, match="longer"):
        export.from_json(json.dumps(_small_doc()))
    monkeypatch.setattr(json_io, "MAX_TEXT", 1 << 28)
    monkeypatch.setattr(json_io, "MAX_NODES", 2)
    with pytest.raises(ValueError, match="nodes"):
        export.from_json(json.dumps(_small_doc()))


# -- HTML ------------------------------------------------------------------------------------

def test_html_is_self_contained_and_escaped(tmp_path, mlp):
    x, y, loss, params, grads, updates = mlp
    p = gc.parameter(np.ones(3, "float32"), name=HOSTILE)
    q = gc.placeholder((3,), name="<img src=x onerror=alert(2)>")
    out = gc.sum(gc.relu(p * q))
    path = tmp_path / "g.html"
    export.to_html([loss, out] + grads, path, updates=updates, title="<i>t</i>")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "@import" not in text and "url(" not in text.replace("url(#arrow)", "")
    assert text.count("<script") == 2 and text.count("</script>") == 2
    assert "alert(1)" in text and "<script>alert" not in text and "<img src" not in text
    assert "\u2028" not in text and "<i>t</i>" not in text
    data = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', text,
                     re.S).group(1)
    graph = json.loads(data)
    assert HOSTILE in {n["name"] for n in graph["nodes"]}
    assert len(graph["nodes"]) == len(export.to_networkx([loss, out] + grads, updates=updates))
    backward = [n["id"] for n in graph["nodes"] if n["role"] == "backward"]
    assert sorted(i for s in graph["steps"] for i in s["lit"]) == sorted(backward)
    assert "innerHTML" not in text and "eval(" not in text
    relu = [n for n in graph["nodes"] if n["op"] == "relu"]
    assert relu and relu[0]["l1"] == "relu"


def test_grad_walk_covers_backward_nodes(mlp):
    from graphc.export.graph import collect
    from graphc.export.gradwalk import grad_walk
    x, y, loss, params, grads, updates = mlp
    view = collect([loss] + grads, updates=updates)
    steps = grad_walk(view)
    backward = {i for i, r in view.roles.items() if r == "backward"}
    lit = [i for s in steps for i in s["lit"]]
    assert sorted(lit) == sorted(backward)
    assert steps[0]["node"] == loss.id and steps[-1]["node"] is not None  # all matched
    by_node = {s["node"]: s["grad"] for s in steps}
    for p, g in zip(params, grads):
        assert by_node[p.id] == g.id


# -- graphc viz --------------------------------------------------------------------------------

@pytest.fixture
def graph_file(tmp_path, mlp):
    x, y, loss, params, grads, updates = mlp
    path = tmp_path / "g.json"
    path.write_text(export.to_json([loss] + grads, updates=updates), encoding="utf-8")
    return path


@pytest.mark.parametrize("ext", ["dot", "graphml", "json", "html"])
def test_viz_cli_from_json(tmp_path, graph_file, ext, capsys):
    out = tmp_path / f"out.{ext}"
    assert cli_main(["viz", str(graph_file), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text
    if ext == "json":
        assert len(export.load_graph(text).updates) == 6
    if ext == "dot":
        assert text.startswith("digraph")


def test_viz_cli_svg_png_need_dot(tmp_path, graph_file, monkeypatch, capsys):
    if shutil.which("dot"):
        out = tmp_path / "g.svg"
        assert cli_main(["viz", str(graph_file), "-o", str(out)]) == 0
        assert "<svg" in out.read_text()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli_main(["viz", str(graph_file), "-o", str(tmp_path / "g.png")]) == 2
    assert "Graphviz" in capsys.readouterr().err


def test_viz_cli_errors(tmp_path, graph_file, capsys):
    assert cli_main(["viz", str(graph_file), "-o", str(tmp_path / "g.unknown")]) == 2
    assert cli_main(["viz", str(tmp_path / "missing.json"), "-o", str(tmp_path / "o.dot")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "graphc-graph", "version": 1, "nodes": 5}')
    assert cli_main(["viz", str(bad), "-o", str(tmp_path / "o.dot")]) == 2
    assert "graph JSON" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    other.write_text("hello")
    assert cli_main(["viz", str(other), "-o", str(tmp_path / "o.dot")]) == 2
    assert cli_main(["viz", str(graph_file), "-o", str(tmp_path / "o"), "--format", "dot"]) == 0


def test_viz_cli_saved_model(tmp_path):
    nn = pytest.importorskip("graphc.nn")
    if not hasattr(nn, "load") or not hasattr(nn.Sequential, "graph"):
        pytest.skip("graphc.nn has no load / Sequential.graph")
    model = nn.Sequential([nn.Dense(8, "relu"), nn.Dense(3, "softmax")], input_dim=5)
    model.save(tmp_path / "model")
    out = tmp_path / "model.json"
    assert cli_main(["viz", str(tmp_path / "model"), "-o", str(out)]) == 0
    g = export.load_graph(out.read_text())
    assert len(g.updates) == 4 and [p.name for p in g.inputs] == ["x", "y"]
    roles = {d["role"] for _, d in export.to_networkx(g.outputs, updates=g.updates)
             .nodes(data=True)}
    assert {"forward", "backward", "update"} <= roles


def test_user_ones_like_is_not_a_gradient_seed():
    import graphc as gc
    import numpy as np
    x = gc.placeholder((), "float32", name="x")
    w = gc.parameter(np.float32(2.0), name="w")
    mine = gc.ones_like(gc.sum(x))          # a user's own scalar 1, not a gradient seed
    cost = w * x + mine
    (g,) = gc.grad(cost, [w])
    G = gc.export.to_networkx([cost, g])
    roles = {d["name"]: d["role"] for _, d in G.nodes(data=True)}
    assert roles[mine.name] != "backward"
