"""A whole graph as versioned JSON, parameter values included, and a careful loader.

Schema (``version`` 1)::

    {"format": "graphc-graph", "version": 1,
     "nodes": [{"id": 0, "op": "placeholder", "name": "x", "shape": [null, 784],
                "dtype": "float32", "where": "train.py:12", "inputs": [], "attrs": {},
                "effects": []}, ...],
     "inputs": [0, ...], "outputs": [17, ...], "updates": [[param id, value id], ...]}

Nodes come dependencies first; a node refers only to nodes listed before it (its inputs, and the
``[parameter, new value]`` pairs of its implicit updates), so a file cannot describe a cycle.
Attribute values are JSON scalars and lists, plus ``{"$expr": tree}`` (an ``ew`` expression,
see ``exprcodec``), ``{"$array": {"dtype", "shape", "data"}}`` (raw little-endian bytes in
base64) and ``{"$float": "inf" | "-inf" | "nan"}``.  Parameters store ``value`` (an array as
above) and ``trainable``; constants store ``value``.

``from_json`` rebuilds leaves with ``gc.placeholder``/``gc.parameter``/``gc.constant`` and
every other node through ``graphc.ops.registry.make`` (shape inference runs again and must agree
with the file).  Nothing is evaluated or unpickled; any malformed, inconsistent or oversized
input raises ``ValueError``.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..ir import Tensor
from . import exprcodec
from .graph import _is_compiled, collect

FORMAT = "graphc-graph"
VERSION = 1

MAX_TEXT = 256 * 1024 * 1024     # characters of JSON text
MAX_NODES = 1_000_000
MAX_RANK = 32
MAX_DIM = 1 << 40                # largest static dimension
MAX_STRING = 4096                # names, labels, source lines
MAX_LIST = 1024                  # length of a list attribute
MAX_ATTR_DEPTH = 4

DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64"}
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_RESERVED_ATTRS = {"op", "inputs", "name", "effects"}  # parameters of registry.make

_INT = "int"
_BOOL = "bool"
_NUM = "number"
_STR = "str"
_DTYPE = "dtype"
_INTS = "ints"
_EXPR = "expr"
_EXPRS = "exprs"

# the attrs of the ops graphc defines: name -> kind, required (OP_ATTRS) or optional.  A node
# of one of these ops holding any other attribute is rejected (each is type-checked: a flag
# "yes" or 2 is not a bool, a stray "label" would reach generated code); ops added later
# without a schema here are read with the generic rules below.
OPTIONAL_ATTRS = {"ew": {"dout": _EXPR, "dexpr": _EXPRS}, "fill_like": {"grad_seed": _BOOL},
                  "size_of": {"batch_stats": _BOOL}}
OP_ATTRS = {
    "ew": {"expr": _EXPR, "label": _STR, "dtype": _DTYPE},
    "matmul": {},
    "transpose": {"perm": _INTS},
    "reshape": {"shape": _INTS},
    "reshape_like": {},
    "expand_dims": {"axes": _INTS},
    "squeeze": {"axes": _INTS},
    "broadcast_like": {},
    "sum": {"axes": _INTS, "keepdims": _BOOL},
    "mean": {"axes": _INTS, "keepdims": _BOOL},
    "max": {"axes": _INTS, "keepdims": _BOOL},
    "logsumexp": {"axes": _INTS, "keepdims": _BOOL},
    "size_of": {"axes": _INTS, "dtype": _DTYPE},
    "stop_gradient": {},
    "identity": {},
    "fill_like": {"value": _NUM},
    "softmax": {"axis": _INT},
    "log_softmax": {"axis": _INT},
    "softmax_cross_entropy": {},
    "softmax_cross_entropy_grad": {},
    "random_uniform": {"seed": _INT},
    "sum_like": {},
    # fused ops (a compiled function's optimized graph)
    "dense": {"trans_a": _BOOL, "trans_b": _BOOL, "expr": _EXPR, "label": _STR, "dtype": _DTYPE},
    "bmm": {"trans_a": _BOOL, "trans_b": _BOOL},
}


# -- writing --------------------------------------------------------------------------------

def _array_json(arr: np.ndarray) -> dict:
    arr = np.asarray(arr)
    if arr.dtype.name not in DTYPES:
        raise ValueError(f"cannot export an array of dtype {arr.dtype}")
    le = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
    return {"dtype": arr.dtype.name, "shape": list(arr.shape),
            "data": base64.b64encode(le.tobytes()).decode("ascii")}


def _writable_str(v: str, what: str) -> str:
    """``v`` if ``from_json`` will read it back (at most MAX_STRING characters), else
    ValueError: a file that cannot be loaded must not be written."""
    if len(v) > MAX_STRING:
        raise ValueError(f"cannot export {what}: {len(v)} characters, more than the "
                         f"{MAX_STRING} a graph file may hold ({_short(v)})")
    return v


def _attr_json(v, where):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str):
        return _writable_str(v, f"attribute {where}")
    if isinstance(v, (int, np.integer)) and not isinstance(v, np.bool_):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isfinite(f):
            return f
        return {"$float": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if isinstance(v, (tuple, list)):
        return [_attr_json(x, where) for x in v]
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, sp.Basic):
        return {"$expr": exprcodec.encode(v)}
    if isinstance(v, np.ndarray):
        return {"$array": _array_json(v)}
    raise ValueError(f"cannot export attribute {where} of type {type(v).__name__}")


def to_json(outputs, inputs=None, updates=None, indent=None) -> str:
    """The graph of ``outputs`` (a tensor, a list, or a compiled function) as JSON text.

    ``inputs``: the placeholders in call order (default: every placeholder, in creation
    order; placeholders the graph needs that ``inputs`` omits follow, in creation order);
    ``updates``: optional (parameter, new value) pairs stored with the graph
    (``load_graph`` gives them back)."""
    view = collect(outputs, inputs, updates)
    index = {}
    nodes = []
    for n in view.nodes:
        index[n.id] = len(nodes)
        if n.op == "parameter":
            attrs = {"value": {"$array": _array_json(n.attrs["store"].array)},
                     "trainable": bool(n.attrs.get("trainable", False))}
        elif n.op == "constant":
            attrs = {"value": {"$array": _array_json(n.attrs["value"])}}
        elif n.op == "placeholder":
            attrs = {}
        else:
            attrs = {k: _attr_json(v, f"{k} of {n.name} ({n.op})") for k, v in n.attrs.items()}
        nodes.append({
            "id": index[n.id], "op": n.op,
            "name": None if n._name is None else _writable_str(n._name, f"the name of {n.op} "
                                                                        f"node {n.id}"),
            # (where is provenance only: a long path is cut, keeping its file:line end)
            "shape": list(n.shape), "dtype": n.dtype, "where": n.where[-MAX_STRING:],
            "inputs": [index[i.id] for i in n.inputs],
            "attrs": attrs, "effects": [[index[p.id], index[v.id]] for p, v in n.effects],
        })
    if updates is not None:
        explicit = list(updates)
    elif _is_compiled(outputs):
        explicit = list(outputs.program.updates)
    else:
        explicit = []
    doc = {
        "format": FORMAT, "version": VERSION, "nodes": nodes,
        "inputs": [index[p.id] for p in view.inputs],
        "outputs": [index[o.id] for o in view.outputs],
        "updates": [[index[p.id], index[v.id]] for p, v in explicit],
    }
    text = json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False)
    # lone surrogates (a source path or name decoded with surrogateescape) as JSON \udXXX
    # escapes: the text stays encodable as UTF-8 (a file can hold it) and loads back the same
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# -- reading --------------------------------------------------------------------------------

@dataclass
class LoadedGraph:
    inputs: list
    outputs: list
    updates: list      # (parameter, new value) pairs stored with the graph
    nodes: dict        # file id -> Tensor


def _fail(msg):
    raise ValueError(f"graph JSON: {msg}")


def _check_int(v, what, lo=-(1 << 63), hi=(1 << 64) - 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        _fail(f"{what} must be an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _check_str(v, what, allow_none=False):
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or len(v) > MAX_STRING:
        _fail(f"{what} must be a string of at most {MAX_STRING} characters, got {_short(v)}")
    return v


def _short(v) -> str:
    s = repr(v) if not isinstance(v, (dict, list)) else type(v).__name__
    return s if len(s) <= 60 else s[:57] + "..."


def _check_dtype(v, what) -> str:
    if not isinstance(v, str) or v not in DTYPES:
        _fail(f"{what}: unsupported dtype {_short(v)}")
    return v


def _check_shape(v, what, allow_none) -> tuple:
    if not isinstance(v, list) or len(v) > MAX_RANK:
        _fail(f"{what}: a shape is a list of at most {MAX_RANK} dimensions, got {_short(v)}")
    out = []
    for d in v:
        if d is None and allow_none:
            out.append(None)
        else:
            out.append(_check_int(d, f"{what} dimension", 0, MAX_DIM))
    return tuple(out)


def _array_from_json(obj, what) -> np.ndarray:
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        _fail(f"{what}: an array is {{dtype, shape, data}}")
    dtype = np.dtype(_check_dtype(obj["dtype"], what))
    shape = _check_shape(obj["shape"], what, allow_none=False)
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    data = obj["data"]
    if not isinstance(data, str):
        _fail(f"{what}: data must be a base64 string")
    if len(data) != 4 * ((nbytes + 2) // 3):  # checked before decoding anything
        _fail(f"{what}: {len(data)} base64 characters do not hold {nbytes} bytes for "
              f"shape {list(shape)} {dtype.name}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        _fail(f"{what}: data is not valid base64")
    if len(raw) != nbytes:
        _fail(f"{what}: {len(raw)} bytes do not match shape {list(shape)} {dtype.name}")
    arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    return arr


def _attr_from_json(v, what, depth=0):
    if depth > MAX_ATTR_DEPTH:
        _fail(f"{what}: attribute nested too deeply")
    if v is None or isinstance(v, (bool, str, float)):
        if isinstance(v, str):
            _check_str(v, what)
        return v
    if isinstance(v, int):
        return _check_int(v, what)
    if isinstance(v, list):
        if len(v) > MAX_LIST:
            _fail(f"{what}: list attribute longer than {MAX_LIST}")
        return tuple(_attr_from_json(x, what, depth + 1) for x in v)
    if isinstance(v, dict) and len(v) == 1:
        (key, val), = v.items()
        if key == "$float" and val in ("inf", "-inf", "nan"):
            return float(val)
        if key == "$expr":
            return exprcodec.decode(val)
        if key == "$array":
            return _array_from_json(val, what)
    _fail(f"{what}: unsupported attribute value {_short(v)}")


def _typed_attr(kind, v, what):
    if kind == _EXPR:
        if not isinstance(v, dict) or set(v) != {"$expr"}:
            _fail(f"{what}: expected an expression")
        return exprcodec.decode(v["$expr"])
    if kind == _STR:
        return _check_str(v, what)
    if kind == _DTYPE:
        return _check_dtype(v, what)
    if kind == _BOOL:
        if not isinstance(v, bool):
            _fail(f"{what}: expected true/false, got {_short(v)}")
        return v
    if kind == _INT:
        return _check_int(v, what)
    if kind == _NUM:
        if isinstance(v, dict):
            val = _attr_from_json(v, what)
            if not isinstance(val, float):
                _fail(f"{what}: expected a number")
            return val
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            _fail(f"{what}: expected a number, got {_short(v)}")
        return float(v)
    if kind == _EXPRS:
        if not isinstance(v, list) or len(v) > MAX_LIST:
            _fail(f"{what}: expected a list of expressions")
        return tuple(_typed_attr(_EXPR, x, what) for x in v)
    if kind == _INTS:
        if not isinstance(v, list) or len(v) > MAX_RANK:
            _fail(f"{what}: expected a list of at most {MAX_RANK} integers")
        return tuple(_check_int(x, what, -MAX_DIM, MAX_DIM) for x in v)
    raise AssertionError(kind)


def _decode_attrs(op, attrs, what) -> dict:
    if not isinstance(attrs, dict):
        _fail(f"{what}: attrs must be an object")
    for k in attrs:
        if not _KEY_RE.match(k) or k in _RESERVED_ATTRS:
            _fail(f"{what}: bad attribute name {_short(k)}")
    schema = dict(OP_ATTRS.get(op, {}))
    missing = sorted(set(schema) - set(attrs))
    if missing:
        _fail(f"{what}: op {op} needs attributes {missing}")
    optional = OPTIONAL_ATTRS.get(op, {})
    if op in OP_ATTRS:
        unknown = sorted(set(attrs) - set(schema) - set(optional))
        if unknown:
            _fail(f"{what}: op {op} has no attributes {unknown}")
    schema.update({k: v for k, v in optional.items() if k in attrs})
    out = {}
    for k, v in attrs.items():
        if k in schema:
            out[k] = _typed_attr(schema[k], v, f"{what} attribute {k}")
        else:  # generic values only (an op without a schema here)
            out[k] = _attr_from_json(v, f"{what} attribute {k}")
    return out


def load_graph(text) -> LoadedGraph:
    """Parse and rebuild a graph written by ``to_json`` (see the module doc)."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_TEXT:
            _fail(f"text longer than {MAX_TEXT} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            _fail("text is not UTF-8")
    if not isinstance(text, str):
        raise ValueError(f"graph JSON: expected text, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        _fail(f"text longer than {MAX_TEXT} characters")
    try:
        doc = json.loads(text, parse_constant=lambda c: _fail(f"{c} is not JSON"))
    except RecursionError:
        _fail("nested too deeply")
    except json.JSONDecodeError as e:
        _fail(f"not valid JSON ({e})")
    except MemoryError:
        _fail("too large")
    if not isinstance(doc, dict):
        _fail("the document must be an object")
    if doc.get("format") != FORMAT:
        _fail(f"format must be {FORMAT!r}, got {_short(doc.get('format'))}")
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        _fail(f"unsupported version {_short(version)} (this graphc reads version {VERSION})")
    for key in ("nodes", "inputs", "outputs"):
        if not isinstance(doc.get(key), list):
            _fail(f"{key!r} must be a list")
    raw_nodes = doc["nodes"]
    if len(raw_nodes) > MAX_NODES:
        _fail(f"more than {MAX_NODES} nodes")
    try:
        return _build(doc, raw_nodes)
    except RecursionError:
        _fail("nested too deeply")


def _build(doc, raw_nodes) -> LoadedGraph:
    from ..ops.core import constant, parameter, placeholder
    from ..ops.registry import all_ops, make

    registered = all_ops()
    nodes: dict = {}

    def ref(i, what):
        if not isinstance(i, int) or isinstance(i, bool) or i not in nodes:
            _fail(f"{what} refers to {_short(i)}, which is not a node defined before it")
        return nodes[i]

    for pos, rn in enumerate(raw_nodes):
        what = f"node {pos}"
        if not isinstance(rn, dict):
            _fail(f"{what} must be an object")
        nid = _check_int(rn.get("id"), f"{what} id", 0, 1 << 62)
        if nid in nodes:
            _fail(f"{what}: duplicate id {nid}")
        op = rn.get("op")
        if not isinstance(op, str) or op not in registered:
            _fail(f"{what}: unknown op {_short(op)}")
        what = f"node {nid} ({op})"
        name = _check_str(rn.get("name"), f"{what} name", allow_none=True)
        where = _check_str(rn.get("where", "<json>"), f"{what} where")
        dtype = _check_dtype(rn.get("dtype"), what)
        shape = _check_shape(rn.get("shape"), f"{what} shape", allow_none=True)
        inputs_raw = rn.get("inputs", [])
        effects_raw = rn.get("effects", [])
        if not isinstance(inputs_raw, list) or not isinstance(effects_raw, list):
            _fail(f"{what}: inputs and effects must be lists")
        inputs = [ref(i, f"{what} input") for i in inputs_raw]
        effects = []
        for pair in effects_raw:
            if not isinstance(pair, list) or len(pair) != 2:
                _fail(f"{what}: an effect is [parameter id, value id]")
            p, v = ref(pair[0], f"{what} effect"), ref(pair[1], f"{what} effect")
            if p.op != "parameter":
                _fail(f"{what}: effect target {pair[0]} is not a parameter")
            # the backends write an effect's value over the parameter's buffer as it is
            if v.shape != p.shape or v.dtype != p.dtype:
                _fail(f"{what}: effect value {pair[1]} is {list(v.shape)} {v.dtype}, its "
                      f"parameter {pair[0]} is {list(p.shape)} {p.dtype}")
            if any(p is q for q, _ in effects):
                _fail(f"{what}: two effects on parameter {pair[0]}")
            effects.append((p, v))
        attrs_raw = rn.get("attrs", {})
        if op in ("placeholder", "parameter", "constant"):
            if inputs or effects:
                _fail(f"{what}: a leaf has no inputs or effects")
            t = _build_leaf(op, attrs_raw, shape, dtype, name, what,
                            placeholder, parameter, constant)
        else:
            attrs = _decode_attrs(op, attrs_raw, what)
            _check_op_specific(op, attrs, inputs, what)
            try:
                t = make(op, inputs, name=name, effects=tuple(effects), **attrs)
            except Exception as e:  # shape rules reject inconsistent nodes
                _fail(f"{what}: cannot rebuild: {type(e).__name__}: {e}")
            if t.shape != shape or t.dtype != dtype:
                _fail(f"{what}: file says shape {list(shape)} {dtype}, inference gives "
                      f"{list(t.shape)} {t.dtype}")
        t.where = where
        nodes[nid] = t

    inputs = [ref(i, "inputs") for i in doc["inputs"]]
    for p in inputs:
        if p.op != "placeholder":
            _fail(f"input {p.name} is not a placeholder")
    outputs = [ref(i, "outputs") for i in doc["outputs"]]
    updates = []
    ups = doc.get("updates", [])
    if not isinstance(ups, list):
        _fail("'updates' must be a list")
    for pair in ups:
        if not isinstance(pair, list) or len(pair) != 2:
            _fail("an update is [parameter id, value id]")
        p, v = ref(pair[0], "update"), ref(pair[1], "update")
        if p.op != "parameter":
            _fail(f"update target {p.name} is not a parameter")
        updates.append((p, v))
    return LoadedGraph(inputs, outputs, updates, nodes)


_ARITY_CACHE: dict = {}


def _arity(op):
    """``(least, most)`` inputs of ``op`` (``most`` None: any number), read from the
    signature of its numpy reference ``ref(node, *values)``; None if it cannot be read."""
    if op not in _ARITY_CACHE:
        import inspect

        from ..ops.registry import lookup
        try:
            params = list(inspect.signature(lookup(op).ref).parameters.values())[1:]
        except (TypeError, ValueError):
            _ARITY_CACHE[op] = None
        else:
            pos = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            fixed = [p for p in params if p.kind in pos]
            least = sum(1 for p in fixed if p.default is inspect.Parameter.empty)
            varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
            _ARITY_CACHE[op] = (least, None if varargs else len(fixed))
    return _ARITY_CACHE[op]


def _check_ew_derivatives(attrs, n, what):
    """``dout`` (derivative in terms of the output a0, unary nodes) and ``dexpr`` (one
    derivative per input) are used by ``gc.grad``: check them here, not there."""
    from ..symbolic import free_args
    dout = attrs.get("dout")
    if dout is not None:
        if n != 1 or not free_args(dout) <= {0}:
            _fail(f"{what}: dout must be an expression of a0 on a one-input node")
    if "dexpr" in attrs:
        dexpr = attrs["dexpr"]
        if not isinstance(dexpr, tuple) or len(dexpr) != n:
            _fail(f"{what}: dexpr must list one derivative per input ({n})")
        for d in dexpr:
            if not isinstance(d, sp.Basic) or isinstance(d, exprcodec.BOOLEAN) or any(
                    i >= n for i in free_args(d)):
                _fail(f"{what}: dexpr entry {_short(d)} is not an expression of the "
                      f"{n} input(s)")


def _check_op_specific(op, attrs, inputs, what):
    # the shape rules read the inputs they expect and ignore extra ones, which would then
    # crash the compiled function (TypeError) rather than fail here
    arity = _arity(op)
    if arity is not None:
        least, most = arity
        if len(inputs) < least or (most is not None and len(inputs) > most):
            count = str(least) if most == least else (
                f"at least {least}" if most is None else f"{least} to {most}")
            _fail(f"{what}: op {op} takes {count} input(s), the node has {len(inputs)}")
    if op in ("ew", "dense"):
        from ..symbolic import free_args
        expr = attrs.get("expr")
        if not isinstance(expr, sp.Basic):
            _fail(f"{what}: attribute expr must be an expression")
        # dense: a0 is the matmul accumulator, a1.. its extra inputs (inputs[2:])
        nargs = len(inputs) if op == "ew" else len(inputs) - 1
        used = free_args(expr)
        if any(i >= nargs for i in used):
            _fail(f"{what}: the expression uses a{max(used)} but the node has "
                  f"{len(inputs)} input(s)")
        if not inputs:
            _fail(f"{what}: an elementwise node needs at least one input")
        if op == "ew":
            _check_ew_derivatives(attrs, len(inputs), what)
    elif op == "random_uniform":
        if attrs["seed"] < 0:
            _fail(f"{what}: seed must be non-negative")
        # the counter is dropout's int64 scalar parameter (numpy and C read it as uint64)
        counter = inputs[0]
        if (counter.op != "parameter" or counter.shape != () or counter.dtype != "int64"
                or int(counter.attrs["store"].array) < 0):
            _fail(f"{what}: the first input must be a non-negative int64 scalar parameter "
                  f"(the counter), got {counter.op} {list(counter.shape)} {counter.dtype}")
    elif op == "fill_like" and inputs[0].dtype != "bool" and \
            np.dtype(inputs[0].dtype).kind in "iu":
        # an integer fill must be representable: numpy and C convert NaN, inf and out of range
        # values differently (INT_MIN vs 0 or INT_MAX; in C it is undefined)
        v, info = attrs["value"], np.iinfo(inputs[0].dtype)
        if not math.isfinite(v) or not info.min <= math.trunc(v) <= info.max:
            _fail(f"{what}: value {v} does not fit {inputs[0].dtype}")
    # axes must be normalized (0 <= axis < rank) and distinct, as the constructors make them
    rank = inputs[0].ndim if inputs else 0
    if op in ("sum", "mean", "max", "logsumexp", "size_of", "squeeze", "expand_dims"):
        axes = attrs["axes"]
        limit = rank + len(axes) if op == "expand_dims" else rank
        if len(set(axes)) != len(axes) or any(not 0 <= a < limit for a in axes):
            _fail(f"{what}: axes {list(axes)} out of range for rank {rank}")
    elif op in ("softmax", "log_softmax") and not 0 <= attrs["axis"] < max(rank, 1):
        _fail(f"{what}: axis {attrs['axis']} out of range for rank {rank}")


def _build_leaf(op, attrs, shape, dtype, name, what, placeholder, parameter, constant):
    if not isinstance(attrs, dict):
        _fail(f"{what}: attrs must be an object")
    if op == "placeholder":
        if attrs:
            _fail(f"{what}: a placeholder has no attributes")
        return placeholder(shape, dtype, name=name)
    expected = {"value", "trainable"} if op == "parameter" else {"value"}
    if set(attrs) != expected:
        _fail(f"{what}: expected attributes {sorted(expected)}")
    v = attrs["value"]
    if not isinstance(v, dict) or set(v) != {"$array"}:
        _fail(f"{what}: value must be an array")
    arr = _array_from_json(v["$array"], f"{what} value")
    if arr.shape != shape or arr.dtype.name != dtype:
        _fail(f"{what}: value {list(arr.shape)} {arr.dtype} does not match the node's "
              f"{list(shape)} {dtype}")
    if op == "parameter":
        if not isinstance(attrs["trainable"], bool):
            _fail(f"{what}: trainable must be true/false")
        return parameter(arr, name=name, trainable=attrs["trainable"], dtype=arr.dtype)
    return constant(arr, dtype=arr.dtype, name=name)


def from_json(text):
    """``(inputs, outputs)``: the placeholders and output tensors of a graph written by
    ``to_json``; malformed or hostile text raises ``ValueError``."""
    g = load_graph(text)
    return g.inputs, g.outputs


def is_graph_json(text_head: str) -> bool:
    """Whether text (its first few KB suffice) looks like a graphc graph file."""
    return '"graphc-graph"' in text_head and text_head.lstrip().startswith("{")
