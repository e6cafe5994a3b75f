"""The op registry: one ``OpDef`` record per primitive op, and the node constructor.

Nothing here knows any particular op.  Autodiff, the interpreter, the passes and the renderers
dispatch through ``lookup(node.op)``.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import AxisError, ShapeError
from ..ir import Tensor, format_shape


@dataclass(frozen=True)
class OpDef:
    """Everything graphc knows about one primitive op.

    infer(inputs, attrs) -> (shape, dtype): the static rule; raises ``ShapeError``.
    ref(node, *values) -> ndarray: the numpy reference (the oracle for every backend).
    grad(node, g) -> list of graph nodes (or None) per input: the gradient rule, in graph ops.
    kind: how backends lower it ("leaf", "elementwise", "reduce", "matmul", "layout",
    "rowwise", "random").
    shape_only: indices of inputs read only for their (run-time) shape, never their values
    (``fill_like``'s input): kernel schedules need not wait for them.
    """

    name: str
    infer: Callable
    ref: Callable
    grad: Optional[Callable] = None
    kind: str = "other"
    doc: str = ""
    differentiable: bool = True
    shape_only: tuple = ()
    extra: dict = field(default_factory=dict)


_REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise KeyError(f"op {opdef.name!r} registered twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def lookup(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)


def data_inputs(node: Tensor) -> list[Tensor]:
    """The inputs whose values ``node`` reads (all but its shape-only ones)."""
    if node.is_leaf:
        return []
    skip = lookup(node.op).shape_only
    return [t for i, t in enumerate(node.inputs) if i not in skip] if skip else list(node.inputs)


def make(op: str, inputs: Sequence[Tensor], name: str | None = None, effects=(), **attrs) -> Tensor:
    """Build a node of ``op``: infer its shape and dtype (errors name the op, the shapes and the
    user's file:line)."""
    opdef = lookup(op)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: input {i} is {type(t).__name__}, expected a graphc Tensor")
    try:
        shape, dtype = opdef.infer(list(inputs), attrs)
    except ShapeError as e:
        raise type(e)(str(e)) from None  # the message already says where (ShapeError)
    return Tensor(op, inputs, attrs, shape, dtype, name=name, effects=effects)


def shape_error(op: str, *shapes, why: str = "incompatible shapes") -> ShapeError:
    return ShapeError(f"{op}: {why} " + " and ".join(format_shape(tuple(s)) for s in shapes))


# -- shape helpers shared by many rules -------------------------------------------------------

def broadcast_shapes(op: str, *shapes) -> tuple:
    """numpy broadcasting over static shapes; ``None`` (free) broadcasts with 1 and with None."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        dims = [s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise shape_error(op, *shapes)
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def normalize_axes(op: str, axis, ndim: int, shape=()) -> tuple:
    """Axis argument (None, int, or sequence; negatives allowed) -> sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    try:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        # (a bool is not an axis: True read as axis 1, 1.0 and 1.7 as axis 1; numpy and PyTorch
        # raise TypeError for both)
        if any(isinstance(a, (bool, np.bool_)) for a in axes):
            raise TypeError
        axes = tuple(operator.index(a) for a in axes)
    except TypeError:
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}") \
            from None
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise AxisError(f"{op}: axis {a} out of range for shape {format_shape(tuple(shape))}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def promote(op: str, *dtypes) -> str:
    """Result dtype of mixing ``dtypes``: floats win over ints/bools (as in PyTorch), float32 with
    float64 gives float64."""
    dts = [np.dtype(d) for d in dtypes]
    floats = [d for d in dts if d.kind == "f"]
    if floats:
        return np.result_type(*floats).name
    if all(d.kind == "b" for d in dts):
        return "bool"
    return np.result_type(*dts).name
