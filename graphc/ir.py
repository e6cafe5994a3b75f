"""The graph IR: immutable symbolic tensors (nodes) and graph walks.

A ``Tensor`` is one node of a static graph: an op name, input nodes, attributes, and a static
shape and dtype inferred when the node is built (``None`` in a shape is a free dimension).
Nodes never change after construction; passes build new nodes instead.  Parameters hold their
numpy value in a mutable ``ParamStore`` that compiled functions update in place.
"""
from __future__ import annotations

import functools
import itertools
import os
import sys
from typing import Iterable, Sequence

import numpy as np

Shape = tuple  # tuple of int | None

_ids = itertools.count()
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=4096)
def _display_path(filename: str):
    """(is the file inside the graphc package, the path to show) for a code object's file."""
    path = os.path.abspath(filename)
    if path.startswith(_PKG_DIR + os.sep):
        return True, path
    rel = os.path.relpath(path)
    return False, path if rel.startswith("..") else rel


def user_location() -> str:
    """``file:line`` of the innermost stack frame outside the graphc package (where the user built
    the node); used in error messages and exported graphs."""
    frame = sys._getframe(1)
    while frame is not None:
        inside, shown = _display_path(frame.f_code.co_filename)
        if not inside:
            return f"{shown}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class ParamStore:
    """Mutable storage of a parameter's value, shared by every compiled function using it.

    ``array`` is the host copy.  A GPU backend that keeps the parameter resident on its device
    registers itself with ``device_wrote(owner)`` after updating it there; the next host read
    of ``array`` then pulls the device copy first (``owner.pull(store)``).  Every host write
    bumps ``version`` so device copies know to refresh."""

    __slots__ = ("_array", "version", "_device_owner", "__weakref__")

    def __init__(self, array: np.ndarray):
        self._array = array
        self.version = 0
        self._device_owner = None

    @property
    def array(self) -> np.ndarray:
        owner = self._device_owner
        if owner is not None:
            self._device_owner = None
            owner.pull(self)  # writes self._array from the device copy
        return self._array

    @array.setter
    def array(self, value: np.ndarray) -> None:
        self._device_owner = None
        self._array = value
        self.version += 1

    def __reduce__(self):
        # a copy (pickle, copy.deepcopy) holds the current value, never the device owner
        return ParamStore, (self.array.copy(),)

    def device_wrote(self, owner) -> None:
        """A device copy is now newer than the host copy."""
        self._device_owner = owner

    def set_from_device(self, value: np.ndarray) -> None:
        """Store the pulled device value without invalidating device copies."""
        self._array = value


def check_int_range(arr: np.ndarray, dtype, what: str) -> None:
    """ValueError (naming ``what``) when numbers in ``arr`` do not fit the integer ``dtype``:
    numpy's astype would wrap them silently (2**40 into int32 gives 0)."""
    want = np.dtype(dtype)
    if want.kind not in "iu" or not arr.size or np.can_cast(arr.dtype, want):
        return
    info = np.iinfo(want)
    lo, hi = arr.min().item(), arr.max().item()  # Python numbers compare exactly
    # (floats are truncated toward zero: anything strictly between min - 1 and max + 1 fits;
    # NaN fails both comparisons)
    if not (info.min - 1 < lo and hi < info.max + 1):
        raise ValueError(f"{what}: values in [{lo}, {hi}] do not fit its dtype {want.name} "
                         f"[{info.min}, {info.max}]")


def numeric_dtype(dtype, what: str, error=TypeError) -> np.dtype:
    """``dtype`` as a numpy dtype, unless it is not bool, integer or float (complex, object, str,
    datetime, void): no op or backend computes those, and they failed far from where they were
    given (a str parameter in the numpy backend, an object parameter holding a Tensor...)."""
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        raise error(f"{what}: dtype {dt} is not supported (graphc tensors hold bool, integer or "
                    f"float numbers)")
    return dt


def _check_name(name):
    """A node name is a str or None: other objects would reach the backends' name sanitizers
    (and exported files) and fail there, far from where they were given."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"a tensor name must be a str or None, got {type(name).__name__} "
                        f"{name!r:.60}")
    return name


class Tensor:
    """A node of the graph: ``op(inputs, **attrs)`` with a static shape and dtype."""

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "_name", "id", "where", "effects",
                 "__weakref__")
    __array_priority__ = 1000  # numpy arrays on the left defer to our operators

    def __init__(self, op: str, inputs: Sequence["Tensor"], attrs: dict, shape: Shape, dtype,
                 name: str | None = None, effects: Sequence[tuple] = (), where: str | None = None):
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs)
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self._name = _check_name(name)
        self.dtype = numeric_dtype(dtype, op if name is None else f"{op} {name!r}").name
        self.id = next(_ids)
        self.where = where if where is not None else user_location()
        # Side effects that run whenever this node is computed by a compiled function:
        # (parameter, new_value) pairs, e.g. batch norm's running statistics.
        self.effects = tuple(effects)

    # -- metadata -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name if self._name is not None else f"{self.op}_{self.id}"

    @name.setter
    def name(self, value: str) -> None:  # a label only: renaming never changes semantics
        self._name = _check_name(value)  # None: back to the default name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_leaf(self) -> bool:
        return not self.inputs

    @property
    def trainable(self) -> bool:
        return bool(self.attrs.get("trainable", False))

    def __repr__(self) -> str:
        return f"<Tensor {self.name}: {self.op} {format_shape(self.shape)} {self.dtype}>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other):  # identity; use gc.equal for elementwise comparison
        return self is other

    def __bool__(self):
        raise TypeError("a symbolic tensor has no truth value; use gc.where / gc.greater")

    # -- parameter and constant values ------------------------------------------------------
    @property
    def value(self) -> np.ndarray:
        if self.op == "parameter":
            return self.attrs["store"].array.copy()
        if self.op == "constant":
            return self.attrs["value"].copy()
        raise AttributeError(f"{self.name} ({self.op}) has no value: only parameters and constants do")

    @value.setter
    def value(self, new) -> None:
        if self.op != "parameter":
            raise AttributeError(f"{self.name} ({self.op}) is not a parameter")
        arr = np.asarray(new)
        if arr.dtype.kind not in "biuf":  # complex, object, str: no faithful real value
            raise ValueError(f"parameter {self.name}: expected numeric ({self.dtype}) data, got "
                             f"{arr.dtype}")
        check_int_range(arr, self.dtype, f"parameter {self.name}")
        if arr.shape != self.shape:
            raise ValueError(f"parameter {self.name}: expected shape {format_shape(self.shape)}, "
                             f"got {format_shape(arr.shape)}")
        self.attrs["store"].array = np.array(arr, dtype=self.dtype, copy=True)

    # -- copies ---------------------------------------------------------------------------
    # A node is known by its id (graph walks, CSE, compiled slots): a copy that kept it would be
    # taken for the original, and two parameters holding different values merged into one.
    # Pickling or copying makes new nodes (copy.deepcopy and pickle copy the whole graph below,
    # shared nodes staying shared), like torch tensors; a copied parameter has its own value.
    def __reduce_ex__(self, protocol):
        return _rebuild, (self.op, self.inputs, self.attrs, self.shape, self.dtype, self._name,
                          self.effects, self.where)

    def __copy__(self):
        attrs = dict(self.attrs)
        if isinstance(attrs.get("store"), ParamStore):
            attrs["store"] = ParamStore(attrs["store"].array.copy())
        return _rebuild(self.op, self.inputs, attrs, self.shape, self.dtype, self._name,
                        self.effects, self.where)

    # Operator overloads are attached in graphc.ops.api (they need the op constructors).


def _rebuild(op, inputs, attrs, shape, dtype, name, effects, where) -> Tensor:
    """A new node (new id) with these fields: the reconstructor of a pickled or copied Tensor."""
    value = attrs.get("value")
    if op == "constant" and isinstance(value, np.ndarray):
        value.setflags(write=False)  # as gc.constant leaves it (a copy is writeable again)
    return Tensor(op, inputs, attrs, shape, dtype, name=name, effects=effects, where=where)


def leaf(op: str, shape: Shape, dtype, name=None, **attrs) -> Tensor:
    return Tensor(op, (), attrs, shape, dtype, name=name)


def toposort(outputs: Iterable[Tensor]) -> list[Tensor]:
    """All nodes that ``outputs`` depend on, inputs before consumers (iterative DFS, so deep
    graphs don't hit the recursion limit).  Deterministic: follows input order."""
    order: list[Tensor] = []
    seen: set[int] = set()
    for root in outputs:
        if root.id in seen:
            continue
        stack = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0 and node.id in seen:
                continue
            if i < len(node.inputs):
                stack.append((node, i + 1))
                child = node.inputs[i]
                if child.id not in seen:
                    stack.append((child, 0))
            else:
                if node.id not in seen:
                    seen.add(node.id)
                    order.append(node)
    return order


def consumers(order: Sequence[Tensor]) -> dict[int, list[Tensor]]:
    """Map node id -> the nodes in ``order`` that read it (once per use)."""
    users: dict[int, list[Tensor]] = {n.id: [] for n in order}
    for n in order:
        for i in n.inputs:
            users.setdefault(i.id, []).append(n)
    return users


def collect_effects(order: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Implicit (parameter, new value) updates of the nodes in ``order``, first one wins."""
    out, seen = [], set()
    for n in order:
        for p, v in n.effects:
            if p.id not in seen:
                seen.add(p.id)
                out.append((p, v))
    return out


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def attrs_key(attrs: dict) -> tuple:
    """A hashable, deterministic key for node attributes (used by CSE and the compile cache)."""
    items = []
    for k in sorted(attrs):
        v = attrs[k]
        if isinstance(v, np.ndarray):
            v = ("ndarray", v.dtype.str, v.shape, v.tobytes())
        elif isinstance(v, ParamStore):
            v = ("store", id(v))
        elif isinstance(v, list):
            v = tuple(v)
        items.append((k, v))
    return tuple(items)
