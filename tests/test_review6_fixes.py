"""Regressions found by review 6: export (JSON loader, GraphML/DOT/HTML text, layout of deep
graphs), gc.data (uncompressed and misplaced files), gc.plot, the train/bench command line and
gc.explain."""
from __future__ import annotations

import copy
import gzip
import json
import math
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
import graphc.data as data
from graphc.cli import main
from graphc.export import from_json, to_json
from graphc.export.layout import layout

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OFFICIAL = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# -- export: the JSON loader -----------------------------------------------------------------

def _doc(outputs, inputs=None):
    return json.loads(to_json(outputs, inputs))


def _node(doc, op):
    return next(n for n in doc["nodes"] if n["op"] == op)


def _rejects(doc, *words):
    with pytest.raises(ValueError) as info:
        from_json(json.dumps(doc))
    for w in words:
        assert w in str(info.value)


def test_json_node_with_an_extra_input_is_rejected():
    # the shape rules read the inputs they expect and ignore the rest: such a node loaded and
    # its compiled function crashed with TypeError
    x = gc.placeholder((None, 2, 2), name="x")
    doc = _doc([gc.sum(gc.reshape(x, (-1, 4)), axis=1)], [x])
    for op in ("reshape", "sum"):
        bad = copy.deepcopy(doc)
        node = _node(bad, op)
        node["inputs"].append(node["inputs"][0])
        _rejects(bad, op, "input")


def test_json_node_with_a_missing_input_is_rejected():
    a = gc.placeholder((2, 3), name="a")
    b = gc.placeholder((3, 2), name="b")
    doc = _doc([a @ b], [a, b])
    _node(doc, "matmul")["inputs"].pop()
    _rejects(doc, "matmul")


def _ew_doc():
    x = gc.placeholder((3,), name="x")
    return _doc([gc.where(gc.greater(x, 0.0), x, -x)], [x])


def test_json_piecewise_condition_must_be_a_condition():
    # Piecewise((1, a0), ...) loaded and failed in numpy ("condlist should be boolean")
    doc = _ew_doc()
    node = next(n for n in doc["nodes"] if n["op"] == "ew"
                and n["attrs"]["expr"]["$expr"].get("f") == "Piecewise")
    pair = node["attrs"]["expr"]["$expr"]["args"][0]
    pair["args"][1] = {"sym": 0}
    _rejects(doc, "condition")
    # and a condition used as a number
    doc = _ew_doc()
    node = next(n for n in doc["nodes"] if n["op"] == "ew"
                and n["attrs"]["expr"]["$expr"].get("f") == "Piecewise")
    cond = node["attrs"]["expr"]["$expr"]["args"][0]["args"][1]
    node["attrs"]["expr"]["$expr"] = {"f": "Add", "args": [{"sym": 0}, cond]}
    _rejects(doc, "number")


def _dropout_doc():
    x = gc.placeholder((None, 4), name="x")
    return _doc([gc.dropout(x, 0.5, True, seed=3)], [x])


def test_json_random_uniform_counter_must_be_the_int64_parameter():
    # with a float placeholder as counter the numpy backend crashed and C ran
    doc = _dropout_doc()
    node = _node(doc, "random_uniform")
    node["inputs"][0] = node["inputs"][1]
    _rejects(doc, "counter")
    doc = _dropout_doc()  # a negative counter: numpy's uint64 conversion overflowed
    counter = _node(doc, "parameter")
    counter["attrs"]["value"]["$array"]["data"] = "//////////8="  # int64 -1
    _rejects(doc, "counter")


def test_json_effect_value_must_match_its_parameter():
    # the C backend copied an int64 scalar over a float32 (3,) buffer (reading past it)
    doc = _dropout_doc()
    node = next(n for n in doc["nodes"] if n["effects"])
    x_id = doc["inputs"][0]
    node["effects"][0][1] = x_id
    _rejects(doc, "effect")
    doc = _dropout_doc()
    node = next(n for n in doc["nodes"] if n["effects"])
    node["effects"].append(list(node["effects"][0]))  # numpy and C disagreed
    _rejects(doc, "two effects")


def test_json_ew_derivative_attributes_are_checked():
    x = gc.placeholder((3,), name="x")
    y = gc.placeholder((3,), name="y")
    doc = _doc([gc.pow(x, y)], [x, y])  # pow carries dexpr
    node = next(n for n in doc["nodes"] if "dexpr" in n["attrs"])
    node["attrs"]["dexpr"] = node["attrs"]["dexpr"][:1]  # gc.grad raised IndexError
    _rejects(doc, "dexpr")
    doc = _doc([gc.sigmoid(x)], [x])  # sigmoid carries dout, a function of the output a0
    node = next(n for n in doc["nodes"] if "dout" in n["attrs"])
    node["attrs"]["dout"] = {"$expr": {"sym": 3}}
    _rejects(doc, "dout")


def test_json_round_trip_of_a_training_graph_still_loads():
    x = gc.placeholder((None, 4, 6), name="x")
    lab = gc.placeholder((None,), dtype="int64", name="lab")
    alpha = gc.parameter(np.full((1, 1, 6), 0.2, np.float32), name="alpha")
    W = gc.parameter(np.random.default_rng(0).standard_normal((24, 6)).astype(np.float32))
    rm = gc.parameter(np.zeros(6, np.float32), trainable=False)
    rv = gc.parameter(np.ones(6, np.float32), trainable=False)
    h = gc.reshape(gc.prelu(x, alpha), (-1, 24)) @ W
    h = gc.batch_norm(h, gc.parameter(np.ones(6, np.float32)), gc.parameter(np.zeros(6, np.float32)),
                      rm, rv, training=True)
    m = gc.maxout(gc.dropout(h, 0.3, True, seed=5), 2)
    cost = gc.cross_entropy(m, lab) + gc.sum(gc.where(gc.less(m, 0.0), m ** 2, gc.sigmoid(m)))
    outs = [cost] + gc.grad(cost, [alpha, W])
    text = to_json(outs, [x, lab])
    feed = (np.random.default_rng(1).standard_normal((5, 4, 6)).astype(np.float32),
            np.array([0, 1, 2, 0, 1]))
    ref = gc.compile([x, lab], outs, backend="numpy")(*feed)
    ins, loaded = from_json(text)
    got = gc.compile(ins, loaded, backend="numpy")(*feed)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -- export: text that files and parsers can hold --------------------------------------------

def test_json_with_a_lone_surrogate_name_is_utf8_and_round_trips():
    x = gc.placeholder((2,), name="bad\udc80name")  # e.g. a surrogateescape'd file name
    text = to_json([x * 2], [x])
    text.encode("utf-8")  # raised UnicodeEncodeError: the text could not be saved
    ins, _ = from_json(text)
    assert ins[0].name == "bad\udc80name"


def test_html_and_dot_with_a_lone_surrogate(tmp_path):
    x = gc.placeholder((2,), name="s\ud800")
    y = gc.sum(x * 2)
    gc.export.to_html([y], tmp_path / "g.html")  # raised UnicodeEncodeError
    assert "graphc" in (tmp_path / "g.html").read_text(encoding="utf-8")
    gc.export.to_dot([y]).encode("utf-8")


def test_graphml_with_control_characters_reads_back(tmp_path):
    nx = pytest.importorskip("networkx")
    x = gc.placeholder((2,), name="a\x01b\x00c\ufffe")
    y = gc.sum(x * 2)
    path = tmp_path / "g.graphml"
    gc.export.to_graphml([y, gc.grad(y, x)], path)
    g = nx.read_graphml(path)  # was: ParseError, not well-formed
    assert g.number_of_nodes() == gc.export.to_networkx([y, gc.grad(y, x)]).number_of_nodes()


def test_layout_of_long_edges_stays_linear():
    # a deep network's gradient graph: weight i feeds layer i and layer n-1-i, so edge spans
    # add up to ~n**2/2 dummy nodes (a 700-layer MLP took minutes and a 56 MB page)
    n = 500
    chain = [("c", i) for i in range(n)]
    params = [("p", i) for i in range(n // 2)]
    nodes = [params[0]] + chain[:1]
    edges = [(chain[i], chain[i + 1]) for i in range(n - 1)]
    for i, p in enumerate(params):
        edges += [(p, chain[i]), (p, chain[n - 1 - i])]
    nodes = params + chain
    sizes = {v: (60.0, 30.0) for v in nodes}
    start = time.perf_counter()
    lay = layout(nodes, edges, sizes)
    assert time.perf_counter() - start < 5.0
    points = sum(len(p) for p in lay.edges.values())
    assert points < 10 * len(nodes)
    assert set(lay.edges) == set(edges) and set(lay.pos) == set(nodes)


# -- gc.data -----------------------------------------------------------------------------------

def _offline(url, *args, **kwargs):
    raise urllib.error.URLError("network disabled in tests")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHC_DATA", raising=False)
    monkeypatch.setattr(data, "default_data_dirs", lambda: [])
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    return tmp_path


def _idx(a):
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return struct.pack(f">I{a.ndim}I", 0x0800 | a.ndim, *a.shape) + a.tobytes()


def _write(directory, names, compress):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5),
              rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3)]
    for name, a in zip(names, arrays):
        raw = _idx(a)
        (directory / name).write_bytes(gzip.compress(raw) if compress else raw)
    return arrays


@pytest.mark.parametrize("dotted", [False, True])
def test_uncompressed_idx_files_load(isolated, dotted):
    names = [n[:-3] for n in OFFICIAL]
    if dotted:
        names = [n.replace("-idx", ".idx") for n in names]
    arrays = _write(isolated / "raw", names, compress=False)
    (X, y), (Xt, yt) = data.load_mnist(isolated / "raw")  # was DatasetNotFoundError
    assert X.shape == (5, 784) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, arrays[1])
    np.testing.assert_allclose(Xt, arrays[2].reshape(3, -1) / 255.0, rtol=1e-6)


def test_truncated_uncompressed_file_names_it(isolated):
    _write(isolated / "raw", [n[:-3] for n in OFFICIAL], compress=False)
    target = isolated / "raw" / "t10k-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:500])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        data.load_mnist(isolated / "raw")


@pytest.mark.skipif(not (SHARED / "fashion-mnist" / OFFICIAL[0]).is_file(),
                    reason="no shared Fashion-MNIST")
def test_the_other_datasets_files_are_named_not_loaded(isolated):
    # load_mnist on the Fashion-MNIST directory silently returned Fashion-MNIST
    with pytest.raises(ValueError) as info:
        data.load_mnist(SHARED / "fashion-mnist")
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "Fashion-MNIST" in message


def test_path_that_is_a_file_says_so(isolated):
    f = isolated / "train-images-idx3-ubyte.gz"
    f.write_bytes(b"x")
    with pytest.raises(data.DatasetNotFoundError, match="is a file"):
        data.load_mnist(f)


def test_graphc_data_naming_a_missing_directory_says_so(isolated, monkeypatch):
    monkeypatch.setenv("GRAPHC_DATA", str(isolated / "nope"))
    with pytest.raises(data.DatasetNotFoundError, match="no such directory"):
        data.load_mnist()


# -- gc.plot -----------------------------------------------------------------------------------

def test_plot_rejects_another_image_format(tmp_path):
    for name in ("curves.svg", "curves.JPG", "curves.pdf"):
        with pytest.raises(ValueError, match="PNG"):
            gc.plot.history({"loss": [1.0, 0.5]}, tmp_path / name)
        assert not (tmp_path / name).exists()  # was: PNG bytes in a .svg file


def test_plot_history_values(tmp_path):
    with pytest.raises(ValueError, match="loss"):
        gc.plot.history({"loss": 0.5}, tmp_path / "a.png")  # was TypeError
    with pytest.raises(ValueError, match="loss"):
        gc.plot.history({"loss": [1.0, "x"]}, tmp_path / "a.png")
    pytest.importorskip("matplotlib")
    out = gc.plot.history({"loss": [1.0, 0.5], "val_loss": [None, 0.7]}, tmp_path / "b.png")
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # None: a gap (was TypeError)


# -- command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--optimizer", "sgd", "--momentum", "2"],
    ["--weight-decay", "-1"],
    ["--lr", "nan"],
    ["--dropout", "abc"],
])
def test_train_rejects_bad_values_as_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:  # was a ValueError traceback after loading data
        main(["train", *argv])
    assert info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_train_bad_init_is_a_usage_error(tmp_path, capsys):
    rc = main(["train", "--init", "bogus", "--backend", "numpy", "--limit", "10",
               "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "unknown init 'bogus'" in capsys.readouterr().err


def test_bench_passes_its_extra_arguments_on(monkeypatch):
    from graphc import benchmarking
    seen = []
    monkeypatch.setattr(benchmarking, "main", lambda argv: seen.append(argv) or 0)
    assert main(["bench", "--quick", "--suite", "dense", "extra"]) == 0
    assert seen and seen[0][-1] == "extra"  # was silently dropped


# -- gc.explain ---------------------------------------------------------------------------------

def _explain_graph():
    x = gc.placeholder((None, 3), name="x")
    lab = gc.placeholder((None,), dtype="int64", name="lab")
    W = gc.parameter(np.ones((3, 2), np.float32), name="W")
    return x, lab, W, gc.cross_entropy(x @ W, lab)


def test_explain_missing_feed_names_the_placeholder():
    x, lab, W, cost = _explain_graph()
    with pytest.raises(ValueError, match="'lab'"):  # was KeyError(<Tensor ...>)
        gc.explain(cost, {x: np.ones((2, 3), np.float32)}, show=False)


def test_explain_accepts_names_and_needs_a_scalar_cost():
    x, lab, W, cost = _explain_graph()
    out = gc.explain(cost, {"x": np.ones((2, 3), np.float32), "lab": np.array([0, 1])},
                     show=False)
    assert math.isclose(float(out.rows[-1]["value"]), math.log(2), rel_tol=1e-5)
    with pytest.raises(gc.ShapeError, match="scalar"):  # was a table seeded with ones
        gc.explain(x @ W, {x: np.ones((2, 3), np.float32)}, show=False)
