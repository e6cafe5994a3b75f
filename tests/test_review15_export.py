"""Review 15: graph export (DOT, GraphML, JSON, HTML), the ``graphc viz`` command, and what
the export round trips turned up elsewhere.  Each test is a regression test of a bug found."""
import numpy as np
import pytest

import graphc as gc


# -- lower.folds: an update-hosting elementwise node folded into a GEMM epilogue --------------

def _adam_wd_step(backend):
    x = gc.placeholder((None, 3), name="x")
    W = gc.parameter(np.arange(6, dtype="float32").reshape(3, 2) / 7, name="W")
    loss = gc.sum(gc.tanh(x @ W))
    (g,) = gc.grad(loss, [W])
    ups = gc.optim.Adam(0.1, weight_decay=0.01).updates([W], [g])
    f = gc.compile([x], [loss, g], updates=ups, backend=backend)
    X = np.linspace(-1, 1, 12).astype("float32").reshape(4, 3)
    return [f(X) for _ in range(3)], W.value.copy()


def test_adam_weight_decay_with_gradient_output_compiles_on_c():
    # g + wd * W reads the gradient's GEMM at the same index and hosts Adam's folded m/v
    # updates; fold_activations also moved it into the GEMM's epilogue, leaving its members
    # pointing at a host that no longer had a kernel: KeyError in lower.folds.schedule
    torch = pytest.importorskip("torch")
    want, w_np = _adam_wd_step("numpy")
    got, w_c = _adam_wd_step("c")
    for s1, s2 in zip(want, got):
        for u, v in zip(s1, s2):
            np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_c, w_np, rtol=1e-5, atol=1e-6)
    Wt = torch.tensor(np.arange(6, dtype="float32").reshape(3, 2) / 7, requires_grad=True)
    opt = torch.optim.Adam([Wt], lr=0.1, weight_decay=0.01)
    X = torch.tensor(np.linspace(-1, 1, 12).astype("float32").reshape(4, 3))
    for _ in range(3):
        opt.zero_grad()
        torch.tanh(X @ Wt).sum().backward()
        opt.step()
    np.testing.assert_allclose(w_c, Wt.detach().numpy(), rtol=1e-5, atol=1e-6)


# -- codegen.cexpr: integer literals beyond int64 ----------------------------------------------

@pytest.mark.parametrize("k", [10 ** 30, -2 ** 64, 2 ** 70])
def test_huge_integer_literal_in_float_kernel(k):
    # the C printer wrote the digits as a C integer literal, which gcc wraps: x * 10**30 was
    # x * 5.1e18, x * -2**64 and x + 2**70 lost the literal entirely (numpy and torch's float
    # scalars compute with the value)
    x = gc.placeholder((4,), "float64", name="x")
    X = np.array([-1.5, 0.0, 0.5, 2.0])
    for y in (x * k, x + k):
        got = gc.compile([x], [y], backend="c")(X)[0]
        want = gc.compile([x], [y], backend="numpy")(X)[0]
        np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(gc.compile([x], [x * k], backend="c")(X)[0], X * float(k),
                               rtol=1e-15)


# -- from_json: expressions every backend can compile, or ValueError ----------------------------

def _ew_doc(tree, dtype="float32"):
    """A graph file whose last node is an ``ew`` of relu(x) (float32) and k (int32) computing
    ``tree`` (an exprcodec JSON tree)."""
    import json

    from graphc import export
    x = gc.placeholder((5,), name="x")
    k = gc.placeholder((5,), "int32", name="k")
    doc = json.loads(export.to_json([gc.relu(x) + k], inputs=[x, k]))
    node = [n for n in doc["nodes"] if n["op"] == "ew"][-1]
    node["attrs"] = {"expr": {"$expr": tree}, "label": "h", "dtype": dtype}
    node["dtype"] = dtype
    return json.dumps(doc)


def _f(name, *args):
    return {"f": name, "args": list(args)}


S0, S1 = {"sym": 0}, {"sym": 1}
_X = np.array([-1.5, -0.5, 0.0, 0.5, 2.0], "float32")
_K = np.array([-2, -1, 0, 1, 3], "int32")


@pytest.mark.parametrize("tree", [_f("Heaviside", S0), _f("Heaviside", S0, {"int": "1"}),
                                  _f("sinh", S0), _f("cosh", S1)],
                         ids=["heaviside", "heaviside2", "sinh", "cosh"])
def test_expression_functions_no_backend_compiles_are_rejected(tree):
    # Heaviside loaded, ran on numpy and failed to compile on c and opencl (no such C
    # function); sinh/cosh failed on opencl (printed sinhf).  No graphc op builds them.
    from graphc import export
    with pytest.raises(ValueError, match="not an allowed function"):
        export.from_json(_ew_doc(tree))


@pytest.mark.parametrize("tree", [{"const": "true"}, {"const": "false"},
                                  _f("Not", {"const": "true"})], ids=["true", "false", "not"])
def test_expression_boolean_constant_as_value_is_rejected(tree):
    # a node computing the constant true (or !true) loaded, ran on numpy and failed to compile
    # on c (C has no `true`)
    from graphc import export
    with pytest.raises(ValueError, match="constant"):
        export.from_json(_ew_doc(tree, "bool"))


def test_expression_boolean_constants_as_conditions_still_load_and_run():
    from graphc import export
    tree = _f("Piecewise", _f("ExprCondPair", S0, _f("And", {"const": "true"},
                                                      _f("StrictGreaterThan", S0, S1))),
              _f("ExprCondPair", S1, {"const": "true"}))
    ins, outs = export.from_json(_ew_doc(tree))
    r = np.maximum(_X, 0)  # a0 is relu(x)
    want = np.where(r > _K, r, _K).astype("float32")
    for backend in ("numpy", "c"):
        np.testing.assert_array_equal(gc.compile(ins, outs, backend=backend)(_X, _K)[0], want)


@pytest.mark.parametrize("base,exp", [({"int": "0"}, {"int": "-1"}),
                                      ({"int": "-8"}, {"rat": ["1", "3"]}),
                                      ({"const": "E"}, {"int": "2000"})],
                         ids=["zero-negative", "complex", "overflow"])
def test_expression_power_of_constants_without_real_value_is_rejected(base, exp):
    # loaded, then numpy raised ZeroDivisionError / cast a complex to real with a warning /
    # raised OverflowError, and the c printer failed (TypeError on zoo, RecursionError)
    from graphc import export
    tree = _f("Add", S0, _f("Pow", base, exp))
    with pytest.raises(ValueError, match="finite real value"):
        export.from_json(_ew_doc(tree))


def test_expression_power_of_constants_in_range_still_runs():
    from graphc import export
    tree = _f("Add", S0, _f("Mul", _f("Pow", {"int": "-2"}, {"int": "3"}),
                            _f("Pow", {"int": "2"}, {"int": "-3"})))
    ins, outs = export.from_json(_ew_doc(tree))
    want = np.maximum(_X, 0) - 1.0
    for backend in ("numpy", "c"):
        np.testing.assert_allclose(gc.compile(ins, outs, backend=backend)(_X, _K)[0], want)


# -- reshape_like / sum_like: shape rules that a graph file could get around --------------------

def _edit(doc, op, shape):
    next(n for n in doc["nodes"] if n["op"] == op)["shape"] = shape


def _two_input_doc(op, g_shape, x_shape, new_x_shape):
    """A graph file of ``op``(g, x) over placeholders g and x, then x's declared shape (and the
    node's) edited to ``new_x_shape``."""
    import json

    from graphc import export
    from graphc.ops.registry import make
    g = gc.placeholder(g_shape, name="g")
    x = gc.placeholder(x_shape, name="x")
    doc = json.loads(export.to_json([make(op, [g, x])], inputs=[g, x]))
    doc["nodes"][1]["shape"] = new_x_shape
    _edit(doc, op, new_x_shape)
    return json.dumps(doc)


def test_reshape_like_of_another_size_is_rejected():
    # reshape_like's shape rule took x's shape without looking at g: a file with g (2, 3) and x
    # (5, 5) loaded, numpy failed at run time and c read 25 floats from a 6-float buffer
    from graphc import export
    with pytest.raises(ValueError, match="reshape_like"):
        export.from_json(_two_input_doc("reshape_like", (2, 3), (6,), [5, 5]))


def test_reshape_like_free_dims_checked_when_c_specializes():
    # the same with free dimensions: c read past g's buffer (garbage values, or a crash)
    from graphc import export
    ins, outs = export.from_json(_two_input_doc("reshape_like", (None, 3), (None, 3),
                                                [None, 5]))
    f = gc.compile(ins, [outs[0] * 2.0], backend="c")
    with pytest.raises(ValueError, match="reshape_like"):
        f(np.ones((2, 3), "float32"), np.zeros((400, 5), "float32"))
    g = np.arange(30, dtype="float32").reshape(10, 3)
    np.testing.assert_array_equal(f(g, np.zeros((6, 5), "float32"))[0], 2 * g.reshape(6, 5))


def test_sum_like_to_a_shape_that_does_not_broadcast_is_rejected():
    # sum_like's shape rule took x's shape as well: g (2, 3) summed "to" x (None, 7) loaded
    # and both numpy and c returned g unchanged, (2, 3) for a node declared (None, 7)
    from graphc import export
    with pytest.raises(ValueError, match="sum_like"):
        export.from_json(_two_input_doc("sum_like", (2, 3), (None, 3), [None, 7]))
    with pytest.raises(ValueError, match="sum_like"):
        export.from_json(_two_input_doc("sum_like", (1, 3), (None, 3), [2, 3]))
    ins, outs = export.from_json(_two_input_doc("sum_like", (4, 3), (None, 3), [None, 1]))
    g = np.arange(12, dtype="float32").reshape(4, 3)
    for backend in ("numpy", "c"):
        got = gc.compile(ins, outs, backend=backend)(g, np.zeros((4, 1), "float32"))[0]
        np.testing.assert_array_equal(got, g.sum(axis=1, keepdims=True))


# -- from_json: fill_like values an integer tensor cannot hold --------------------------------

def _fill_doc(dtype, value):
    import json

    from graphc import export
    from graphc.ops.registry import make
    x = gc.placeholder((4,), dtype, name="x")
    doc = json.loads(export.to_json([make("fill_like", [x], value=0.0)], inputs=[x]))
    doc["nodes"][1]["attrs"]["value"] = value
    return json.dumps(doc)


@pytest.mark.parametrize("dtype,value", [("int32", {"$float": "nan"}), ("int32", 1e300),
                                         ("int64", {"$float": "-inf"}), ("uint8", -1.0),
                                         ("int8", 128)])
def test_fill_like_integer_value_out_of_range_is_rejected(dtype, value):
    # loaded, then numpy gave INT_MIN where c gave 0 / INT_MAX (a C conversion of NaN or of an
    # out-of-range double is undefined)
    from graphc import export
    with pytest.raises(ValueError, match="does not fit"):
        export.from_json(_fill_doc(dtype, value))


def test_fill_like_integer_value_in_range_loads():
    from graphc import export
    ins, outs = export.from_json(_fill_doc("int32", -3.7))
    for backend in ("numpy", "c"):
        got = gc.compile(ins, outs, backend=backend)(np.zeros(4, "int32"))[0]
        np.testing.assert_array_equal(got, np.full(4, -3, "int32"))
    export.from_json(_fill_doc("uint8", 255.0))
    export.from_json(_fill_doc("bool", {"$float": "nan"}))


# -- dense / bmm (fused ops a compiled program's graph file holds) -----------------------------

def _fused_doc(ins, outs, edits):
    """to_json of the graph, then ``edits``: (node op or placeholder name, key, value)."""
    import json

    from graphc import export
    doc = json.loads(export.to_json(outs, inputs=ins))
    for who, key, value in edits:
        for n in doc["nodes"]:
            if n["op"] == who or n["name"] == who:
                if key == "attr_dtype":
                    n["attrs"]["dtype"] = value
                else:
                    n[key] = value
    return json.dumps(doc)


def _dense(inputs, dtype, expr=None):
    from graphc.ops.registry import make
    from graphc.symbolic import A
    return make("dense", inputs, trans_a=False, trans_b=False,
                expr=A[0] + A[1] if expr is None and len(inputs) > 2 else A[0], label="d",
                dtype=dtype)


def _bmm(a, b):
    from graphc.ops.registry import make
    return make("bmm", [a, b], trans_a=False, trans_b=False)


def _ph(shape, dtype="float32", name="a"):
    return gc.placeholder(shape, dtype, name=name)


@pytest.mark.parametrize("case", ["dense-mixed", "dense-result", "dense-int", "dense-extra",
                                  "bmm-mixed", "bmm-int"])
def test_fused_gemm_nodes_with_bad_dtypes_or_epilogue_shapes_are_rejected(case):
    # each loaded; c then read a float64 operand as float32 (3.75 for 4), float32 operands
    # into a float64 result (1.2e-4 for 4), gave 0 for int GEMMs, and read an epilogue input
    # of shape (7,) or (300, 5) as if it were (5,) / (3, 5) (numpy raised at run time)
    from graphc import export
    a, b, e = _ph((3, 4)), _ph((4, 5), name="b"), _ph((5,), name="e")
    a3, b3 = _ph((2, 3, 4)), _ph((2, 4, 5), name="b")
    dense = ([a, b], [_dense([a, b], "float32")])
    bmm = ([a3, b3], [_bmm(a3, b3)])
    to_int = [("a", "dtype", "int32"), ("b", "dtype", "int32")]
    doc = {"dense-mixed": dense + ([("b", "dtype", "float64")],),
           "dense-result": dense + ([("dense", "dtype", "float64"),
                                     ("dense", "attr_dtype", "float64")],),
           "dense-int": dense + (to_int + [("dense", "dtype", "int32"),
                                           ("dense", "attr_dtype", "int32")],),
           "dense-extra": ([a, b, e], [_dense([a, b, e], "float32")], [("e", "shape", [7])]),
           "bmm-mixed": bmm + ([("b", "dtype", "float64")],),
           "bmm-int": bmm + (to_int + [("bmm", "dtype", "int32")],)}[case]
    with pytest.raises(ValueError, match="dense|bmm"):
        export.from_json(_fused_doc(*doc))


def test_fused_gemm_nodes_that_fit_still_load_and_run():
    from graphc import export
    a, b, e = _ph((3, 4)), _ph((4, 5), name="b"), _ph((5,), name="e")
    aN, b3 = _ph((None, 3, 4)), _ph((2, 4, 5), name="b")
    ins, outs = export.from_json(export.to_json([_dense([a, b, e], "float32")],
                                                inputs=[a, b, e]))
    A_ = np.arange(12, dtype="float32").reshape(3, 4)
    B_ = np.ones((4, 5), "float32")
    E_ = np.arange(5, dtype="float32")
    for backend in ("numpy", "c"):
        np.testing.assert_array_equal(gc.compile(ins, outs, backend=backend)(A_, B_, E_)[0],
                                      A_ @ B_ + E_)
    # bmm of a free batch dimension (np.broadcast_shapes raised TypeError on None)
    out = _bmm(aN, b3)
    assert out.shape == (2, 3, 5)


# -- to_html: lone surrogates ------------------------------------------------------------------

def _surrogate_page(tmp_path):
    from graphc import export
    q = gc.placeholder((2,), name="sur\ud800x")
    out = gc.sum(gc.relu(q))
    out.name = "\udfff"
    page = tmp_path / "s.html"
    export.to_html([out], page)
    return page


def test_html_data_has_no_lone_surrogates(tmp_path):
    # they were written as \ud800 JSON escapes, which JSON.parse turns back into lone
    # surrogates in the DOM (see the Chromium test below); shown as U+FFFD, as in GraphML
    import json
    import re
    text = _surrogate_page(tmp_path).read_text(encoding="utf-8")
    data = re.search(r'id="graph-data">(.*?)</script>', text, re.S).group(1)
    assert not re.search(r"\\u[dD][89a-fA-F]", data)
    names = {n["name"] for n in json.loads(data)["nodes"]}
    assert {"sur\ufffdx", "\ufffd"} <= names


def _chromium():
    import shutil
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed")
def test_html_lone_surrogate_name_does_not_crash_chromium(tmp_path):
    # chromium --dump-dom of the page died with SIGILL (exit 132) serializing the DOM
    import os
    import subprocess
    page = _surrogate_page(tmp_path)
    proc = subprocess.run(
        [_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
         "--dump-dom", page.resolve().as_uri() + "#selftest"],
        capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    assert '"ok":true' in proc.stdout.decode("utf-8", "replace").replace(" ", "")


# -- round trips on c ----------------------------------------------------------------------------

def _mlp_training(opt, seed=0):
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, 12), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    params, h = [], x
    for i, (a, b) in enumerate([(12, 16), (16, 8), (8, 5)]):
        W = gc.parameter(rng.standard_normal((a, b)).astype("float32") * 0.3, name=f"W{i}")
        bias = gc.parameter(np.zeros(b, "float32"), name=f"b{i}")
        params += [W, bias]
        h = h @ W + bias
        if i < 2:
            h = gc.gelu(h)
    loss = gc.cross_entropy(h, y)
    grads = gc.grad(loss, params)
    return x, y, loss, grads, opt.updates(params, grads)


@pytest.mark.parametrize("opt", [lambda: gc.optim.Adam(1e-2, weight_decay=0.01),
                                 lambda: gc.optim.SGD(0.1, momentum=0.9, nesterov=True),
                                 lambda: gc.optim.RMSProp(0.01)], ids=["adam", "sgd", "rmsprop"])
def test_mlp_training_graph_round_trip_on_c(opt):
    # (the Adam case crashed on c before the fold_activations fix, with or without JSON)
    from graphc import export
    x, y, loss, grads, ups = _mlp_training(opt())
    g = export.load_graph(export.to_json([loss] + grads, inputs=[x, y], updates=ups))
    assert [(p.name, p.trainable, p.dtype, p.shape) for p, _ in g.updates] == \
        [(p.name, p.trainable, p.dtype, p.shape) for p, _ in ups]
    f1 = gc.compile([x, y], [loss] + grads, updates=ups, backend="c")
    f2 = gc.compile(g.inputs, g.outputs, updates=g.updates, backend="c")
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((7, 12)).astype("float32"), rng.integers(0, 5, 7)
    for _ in range(3):
        for a, b in zip(f1(X, Y), f2(X, Y)):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    for (p, _), (q, _) in zip(ups, g.updates):
        np.testing.assert_array_equal(p.value, q.value)


@pytest.mark.slow
def test_every_op_case_round_trips_on_c():
    import os
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from op_cases import CASES, placeholders_for, sample_inputs, weighted_cost

    from graphc import export
    phs_all, arrays, outs = [], [], []
    for ci, c in enumerate(CASES):
        for si, shapes in enumerate(c.shapes[:2]):
            vals = sample_inputs(c, shapes, "float32", seed=ci)
            phs = placeholders_for(vals)
            for p in phs:
                p.name = f"{c.id}_{si}_{p.name}"
            out = c.build(*phs)
            outs.append(out)
            if c.grad_inputs():
                cost, _ = weighted_cost(out, np.random.default_rng(ci))
                outs += gc.grad(cost, [phs[i] for i in c.grad_inputs()])
            phs_all += phs
            arrays += vals
    ins, outs2 = export.from_json(export.to_json(outs, inputs=phs_all))
    assert [p.name for p in ins] == [p.name for p in phs_all]
    r1 = gc.compile(phs_all, outs, backend="c")(*arrays)
    r2 = gc.compile(ins, outs2, backend="c")(*arrays)
    for a, b in zip(r1, r2):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
