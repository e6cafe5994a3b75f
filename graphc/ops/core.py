"""Structural ops, one block each: leaves, matmul, layout changes, reductions.

Each block registers the primitive's ``OpDef`` (shape rule, numpy reference, gradient rule in
graph ops) and defines the public constructor next to it.
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from ..errors import AxisError, ShapeError
from ..ir import ParamStore, Tensor, format_shape, is_float, leaf, numeric_dtype
from .registry import (OpDef, broadcast_shapes, make, normalize_axes, register, shape_error)


def _no_infer(inputs, attrs):  # leaves are built directly, never through make()
    raise AssertionError("leaf ops have no inference rule")


# -- leaves -----------------------------------------------------------------------------------

register(OpDef("placeholder", _no_infer, lambda node: None, kind="leaf"))
register(OpDef("parameter", _no_infer, lambda node: node.attrs["store"].array, kind="leaf"))
register(OpDef("constant", _no_infer, lambda node: node.attrs["value"], kind="leaf"))


def placeholder(shape, dtype="float32", name: str | None = None) -> Tensor:
    """A graph input fed at call time; ``None`` in ``shape`` is a free dimension.

    ``dtype``: a numpy dtype name (default ``"float32"``; ``"int64"`` for class labels).
    ``name``: how compiled functions accept it by keyword and how errors name it (default:
    an automatic name).  A negative or non-integer size raises ``ValueError``."""
    shape = (shape,) if isinstance(shape, (int, type(None))) else tuple(shape)
    for d in shape:
        if d is not None and (not isinstance(d, (int, np.integer)) or d < 0):
            raise ValueError(f"placeholder {name}: bad dimension {d!r} in shape {shape}")
    return leaf("placeholder", shape, np.dtype(dtype), name=name)


def parameter(value, name: str | None = None, trainable: bool = True, dtype=None) -> Tensor:
    """A tensor holding a numpy array (a copy of ``value``); read and set it with ``.value``.

    ``dtype``: defaults to ``value``'s (numpy's: a Python list of floats is float64, so pass
    float32 arrays).  ``trainable=False`` marks state that optimizers and ``model.parameters``
    leave alone.  Setting ``.value`` to an array of another shape raises ``ValueError``;
    ``value`` a symbolic tensor raises ``TypeError``."""
    if isinstance(value, Tensor):
        raise TypeError("parameter: value is already a symbolic tensor")
    arr = np.array(value, dtype=dtype, copy=True)
    numeric_dtype(arr.dtype, f"parameter {name!r}", ValueError)  # as p.value = ... does
    if dtype is None and arr.dtype.kind not in "fb" and arr.dtype != np.int64:
        arr = arr.astype(np.float32) if arr.dtype.kind in "iu" and trainable else arr
    return leaf("parameter", arr.shape, arr.dtype, name=name, store=ParamStore(arr),
                trainable=bool(trainable))


def constant(value, dtype=None, name: str | None = None) -> Tensor:
    """A fixed tensor.  Python floats give float32 and Python ints int64 unless ``dtype``;
    numpy arrays and numpy scalars keep their dtype (``np.float64(x)`` is float64, as in
    ``torch.tensor``: it is a subclass of Python's float, which made it float32)."""
    if isinstance(value, Tensor):
        raise TypeError("constant: value is already a symbolic tensor")
    arr = np.asarray(value)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif not isinstance(value, (np.ndarray, np.generic)) and arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    numeric_dtype(arr.dtype, f"constant {name!r}" if name else "constant", ValueError)
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return leaf("constant", arr.shape, arr.dtype, name=name, value=arr)


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; numpy/Python values become constants (float data takes the float dtype
    of ``like``)."""
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if like is not None and arr.dtype.kind == "f" and is_float(like.dtype):
        arr = arr.astype(like.dtype)
    return constant(arr)


# -- matmul -----------------------------------------------------------------------------------

def _matmul_infer(inputs, attrs):
    a, b = inputs
    if a.ndim < 2 or b.ndim < 2:
        raise shape_error("matmul", a.shape, b.shape, why="needs operands of rank >= 2, got")
    k1, k2 = a.shape[-1], b.shape[-2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise shape_error("matmul", a.shape, b.shape)
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul: dtypes differ ({a.dtype} {format_shape(a.shape)} and "
                         f"{b.dtype} {format_shape(b.shape)})")
    try:
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    except ShapeError:  # name the operands, not just their batch dimensions
        raise shape_error("matmul", a.shape, b.shape,
                          why="batch dimensions do not broadcast:") from None
    return batch + (a.shape[-2], b.shape[-1]), a.dtype


def swap_last(t: Tensor) -> Tensor:
    perm = list(range(t.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return transpose(t, perm)


def _matmul_grad(node, g):
    a, b = node.inputs
    k, n = b.shape[-2:]
    if b.ndim == 2 and a.ndim > 2 and k is not None and n is not None:
        # b shared by a's batch: one (K, rows) x (rows, N) product over all the rows at once,
        # not a (batch, K, N) stack of products summed afterwards (a batch times the memory)
        gb = matmul(swap_last(reshape(a, (-1, k))), reshape(g, (-1, n)))
    else:
        gb = matmul(swap_last(a), g)
    return [matmul(g, swap_last(b)), gb]


register(OpDef("matmul", _matmul_infer, lambda node, a, b: np.matmul(a, b), _matmul_grad,
               kind="matmul"))


def matmul(a, b) -> Tensor:
    """numpy ``matmul``: 1-D operands are promoted to matrices and the added axis removed."""
    a = as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = as_tensor(b, like=a)
    if a.dtype != b.dtype and is_float(a.dtype) and is_float(b.dtype):
        from .elementwise import cast
        dt = np.result_type(a.dtype, b.dtype).name
        a, b = cast(a, dt), cast(b, dt)
    if a.ndim == 0 or b.ndim == 0:
        raise shape_error("matmul", a.shape, b.shape, why="needs operands of rank >= 1, got")
    # checked before 1-D operands are promoted, so the error names the shapes the user gave
    k1, k2 = a.shape[-1], b.shape[0 if b.ndim == 1 else -2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise shape_error("matmul", a.shape, b.shape)
    squeeze_first, squeeze_last = a.ndim == 1, b.ndim == 1
    if squeeze_first:
        a = expand_dims(a, 0)
    if squeeze_last:
        b = expand_dims(b, -1)
    out = make("matmul", [a, b])
    if squeeze_last:
        out = reshape(out, out.shape[:-1]) if None not in out.shape else squeeze(out, -1)
    if squeeze_first:
        out = squeeze(out, -2 if not squeeze_last else -1)
    return out


# -- layout -----------------------------------------------------------------------------------

def _transpose_infer(inputs, attrs):
    (t,), perm = inputs, attrs["perm"]
    if sorted(perm) != list(range(t.ndim)):
        raise ShapeError(f"transpose: axes {perm} are not a permutation for shape "
                         f"{format_shape(t.shape)}")
    return tuple(t.shape[p] for p in perm), t.dtype


def _transpose_grad(node, g):
    inv = list(np.argsort(node.attrs["perm"]))
    return [transpose(g, inv)]


register(OpDef("transpose", _transpose_infer,
               lambda node, x: np.transpose(x, node.attrs["perm"]), _transpose_grad,
               kind="layout"))


def transpose(t: Tensor, axes=None) -> Tensor:
    """Permute axes (reverse them when ``axes`` is None), as numpy."""
    t = as_tensor(t)
    if axes is not None and any(not -t.ndim <= int(a) < t.ndim for a in axes):
        # (a plain modulo would silently turn axis 3 of a matrix into axis 1)
        raise AxisError(f"transpose: axes {tuple(axes)} out of range for shape "
                         f"{format_shape(t.shape)}")
    perm = tuple(reversed(range(t.ndim))) if axes is None else tuple(int(a) % builtins.max(t.ndim, 1)
                                                                         for a in axes)
    if perm == tuple(range(t.ndim)):
        return t
    return make("transpose", [t], perm=perm)


def _resolve_reshape(op, in_shape, target):
    """Static output shape of reshape; -1/None entries stay None unless computable."""
    unknown = [i for i, d in enumerate(target) if d is None or d == -1]
    if len(unknown) > 1:
        raise ShapeError(f"{op}: at most one -1/None in target shape {target}")
    if any(d is not None and d < -1 for d in target):  # numpy rejects these at run time
        raise shape_error(op, in_shape, target, why="negative dimension in target shape:")
    known = int(np.prod([d for d in target if d is not None and d != -1]))
    fixed = int(np.prod([d for d in in_shape if d is not None]))
    if None in in_shape and not unknown and fixed and known % fixed:
        # whatever the free dims are, the input's size is a multiple of its known dims
        raise shape_error(op, in_shape, target, why="cannot reshape")
    if None not in in_shape:
        total = int(np.prod(in_shape))
        if unknown:
            if known == 0 or total % known:
                raise shape_error(op, in_shape, target, why="cannot reshape")
            return tuple(total // known if i in unknown else d for i, d in enumerate(target))
        if total != known:
            raise shape_error(op, in_shape, target, why="cannot reshape")
        return tuple(target)
    return tuple(None if i in unknown else d for i, d in enumerate(target))


def _reshape_infer(inputs, attrs):
    return _resolve_reshape("reshape", inputs[0].shape, attrs["shape"]), inputs[0].dtype


def _reshape_ref(node, x):
    return np.reshape(x, tuple(-1 if d is None else d for d in node.attrs["shape"]))


register(OpDef("reshape", _reshape_infer, _reshape_ref,
               lambda node, g: [reshape_like(g, node.inputs[0])], kind="layout"))


def reshape(t: Tensor, shape) -> Tensor:
    """numpy reshape; one entry may be -1 (or None)."""
    t = as_tensor(t)
    try:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        # entries are ints (int() turned 2.7 into 2 and True into 1; numpy and PyTorch raise)
        if any(isinstance(d, (bool, np.bool_)) for d in shape):
            raise TypeError
        shape = tuple(-1 if d is None else operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"reshape: shape must be an int or a tuple of ints (-1 or None for one "
                        f"inferred dimension), got {shape!r}") from None
    if shape == t.shape:
        return t
    return make("reshape", [t], shape=shape)


def _reshape_like_infer(inputs, attrs):
    g, x = inputs
    if None not in g.shape and None not in x.shape and \
            int(np.prod(g.shape)) != int(np.prod(x.shape)):
        # (the compiled backends would read x's size of elements from g's buffer)
        raise shape_error("reshape_like", g.shape, x.shape, why="cannot reshape")
    return x.shape, g.dtype


# reshape_like(g, x): g with x's runtime shape (the gradient of reshape, free dims included)
register(OpDef(
    "reshape_like", _reshape_like_infer,
    lambda node, g, x: np.reshape(g, np.shape(x)),
    lambda node, g: [reshape_like(g, node.inputs[0]), None], kind="layout", shape_only=(1,)))


def reshape_like(g: Tensor, x: Tensor) -> Tensor:
    if g.shape == x.shape and None not in g.shape:
        return g
    return make("reshape_like", [g, x])


def _expand_infer(inputs, attrs):
    t, axes = inputs[0], attrs["axes"]
    out = list(t.shape)
    for a in axes:
        out.insert(a, 1)
    return tuple(out), t.dtype


register(OpDef("expand_dims", _expand_infer,
               lambda node, x: np.expand_dims(x, node.attrs["axes"]),
               lambda node, g: [squeeze(g, node.attrs["axes"])], kind="layout"))


def expand_dims(t: Tensor, axis) -> Tensor:
    """Insert size-1 axes at ``axis`` (int or tuple, positions in the result)."""
    t = as_tensor(t)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = t.ndim + len(axes)
    axes = normalize_axes("expand_dims", axes, nd, t.shape)
    return make("expand_dims", [t], axes=axes) if axes else t


def _squeeze_infer(inputs, attrs):
    t, axes = inputs[0], attrs["axes"]
    for a in axes:
        if t.shape[a] not in (1, None):
            raise ShapeError(f"squeeze: axis {a} of {format_shape(t.shape)} is not 1")
    return tuple(d for i, d in enumerate(t.shape) if i not in axes), t.dtype


register(OpDef("squeeze", _squeeze_infer,
               lambda node, x: np.squeeze(x, node.attrs["axes"]) if node.attrs["axes"] else x,
               lambda node, g: [expand_dims(g, node.attrs["axes"])], kind="layout"))


def squeeze(t: Tensor, axis) -> Tensor:
    """Remove the size-1 axes ``axis`` (an int or a tuple) of ``t``, as ``np.squeeze``; an axis
    out of range or of another size is a ``gc.ShapeError``."""
    t = as_tensor(t)
    axes = normalize_axes("squeeze", axis, t.ndim, t.shape)
    return make("squeeze", [t], axes=axes) if axes else t


def _bcast_like_infer(inputs, attrs):
    g, ref = inputs
    out = broadcast_shapes("broadcast_like", g.shape, ref.shape)
    if len(out) != ref.ndim:
        raise shape_error("broadcast_like", g.shape, ref.shape)
    return ref.shape, g.dtype


register(OpDef("broadcast_like", _bcast_like_infer,
               lambda node, g, ref: np.broadcast_to(g, np.shape(ref)),
               lambda node, g: [unbroadcast(g, node.inputs[0]), None], kind="layout",
               shape_only=(1,)))


def broadcast_like(g: Tensor, ref: Tensor) -> Tensor:
    """``g`` broadcast to the (runtime) shape of ``ref``."""
    if g.shape == ref.shape and None not in g.shape:
        return g
    return make("broadcast_like", [g, ref])


def unbroadcast(g: Tensor, x: Tensor) -> Tensor:
    """Sum ``g`` down to the shape of ``x`` (the adjoint of numpy broadcasting).

    The one place where gradients are un-broadcast: leading axes x lacks are summed away and
    axes where x has size 1 are summed with keepdims."""
    if g.shape == x.shape:
        return g
    lead = g.ndim - x.ndim
    if lead < 0:
        raise shape_error("unbroadcast", g.shape, x.shape)
    if lead:
        g = sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, (dg, dx) in enumerate(zip(g.shape, x.shape)) if dx == 1 and dg != 1)
    if axes:
        g = sum(g, axis=axes, keepdims=True)
    return g


def _sum_like_ref(node, g, x):
    gs, xs = np.shape(g), np.shape(x)
    lead = len(gs) - len(xs)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(xs)
                                      if d == 1 and gs[lead + i] != 1)
    return np.sum(g, axis=axes).reshape(xs) if axes else g


# sum_like(g, x): g summed down to x's run-time shape (un-broadcasting along free dimensions,
# which only the call's shapes decide); the backends' concretize pass makes it static
def _sum_like_infer(inputs, attrs):
    g, x = inputs
    lead = g.ndim - x.ndim
    if lead < 0 or any(dx not in (None, 1) and dg is not None and dg != dx
                       for dg, dx in zip(g.shape[lead:], x.shape)):
        # x must broadcast to g (unbroadcast's rule), else the result is not x's shape
        raise shape_error("sum_like", g.shape, x.shape, why="cannot sum")
    return x.shape, g.dtype


register(OpDef("sum_like", _sum_like_infer,
               _sum_like_ref, lambda node, g: [broadcast_like(g, node.inputs[0]), None],
               kind="shape", shape_only=(1,)))


def sum_like(g: Tensor, x: Tensor) -> Tensor:
    """``g`` summed down to the run-time shape of ``x`` (``unbroadcast`` once shapes are
    known)."""
    g = unbroadcast(g, x)
    if None not in x.shape:
        return g
    return make("sum_like", [g, x])


# -- reductions -------------------------------------------------------------------------------

def _reduce_infer(op):
    def infer(inputs, attrs):
        t, axes, keep = inputs[0], attrs["axes"], attrs["keepdims"]
        if op == "max":
            for a in axes:
                if t.shape[a] == 0:
                    raise ShapeError(f"max: zero-size axis {a} of {format_shape(t.shape)}")
        shape = tuple((1 if i in axes else d) for i, d in enumerate(t.shape) if keep or i not in axes)
        dtype = t.dtype if op != "mean" or is_float(t.dtype) else "float32"
        if op == "sum" and not is_float(t.dtype):
            dtype = _SUM_INT  # accumulated in 64 bits by every backend
        return shape, dtype
    return infer


def _keep(node, g):
    """g reshaped to the keepdims form of the reduction ``node``."""
    return g if node.attrs["keepdims"] else expand_dims(g, node.attrs["axes"])


def _sum_grad(node, g):
    return [broadcast_like(_keep(node, g), node.inputs[0])]


def _np_mean(x, axis, keepdims):
    """np.mean; an empty reduction gives NaN like numpy, without numpy's RuntimeWarning."""
    if np.size(x) == 0 or any(np.shape(x)[a] == 0 for a in axis):
        shape = tuple(1 if i in axis else d for i, d in enumerate(np.shape(x))
                      if keepdims or i not in axis)
        return np.full(shape, np.nan)
    return np.mean(x, axis=axis, keepdims=keepdims)


def _mean_grad(node, g):
    x = node.inputs[0]
    from .elementwise import div
    return [div(broadcast_like(_keep(node, g), x), size_of(x, node.attrs["axes"]))]


def _max_grad(node, g):
    # split the gradient evenly among the maxima (as PyTorch's amax)
    from .elementwise import cast, div, equal, mul
    x = node.inputs[0]
    m = broadcast_like(_keep(node, node), x)
    mask = cast(equal(x, m), x.dtype)
    count = broadcast_like(sum(mask, axis=node.attrs["axes"], keepdims=True), x)
    return [mul(broadcast_like(_keep(node, g), x), div(mask, count))]


for _name, _np, _grad in (("sum", np.sum, _sum_grad), ("mean", _np_mean, _mean_grad),
                          ("max", np.max, _max_grad)):
    register(OpDef(_name, _reduce_infer(_name),
                   (lambda f: lambda node, x: np.asarray(
                       f(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"])
                   ).astype(node.dtype, copy=False))(_np),
                   _grad, kind="reduce"))


# the dtype of a sum of integers or bools, whatever their width: int64, as PyTorch's (numpy's
# too for signed types; it sums unsigned ones to uint64, the same bits)
_SUM_INT = "int64"


def _reduce(op, t, axis, keepdims):
    t = as_tensor(t)
    axes = normalize_axes(op, axis, t.ndim, t.shape)
    if not axes and op != "mean":
        if op == "sum" and not is_float(t.dtype) and t.dtype != _SUM_INT:
            from .elementwise import cast  # (a sum over no axes still promotes, as PyTorch's)
            return cast(t, _SUM_INT)
        return t
    return make(op, [t], axes=axes, keepdims=bool(keepdims))


def sum(t, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - numpy's name
    """Sum over ``axis`` (None: all axes)."""
    return _reduce("sum", t, axis, keepdims)


def mean(t, axis=None, keepdims=False) -> Tensor:
    """Mean over ``axis`` (None: all axes)."""
    return _reduce("mean", t, axis, keepdims)


def max(t, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - numpy's name
    """Maximum over ``axis``; the gradient is shared evenly among tied maxima."""
    return _reduce("max", t, axis, keepdims)


def _check_batch_stats(attrs, shape, error=ShapeError):
    """``batch_stats``: the count is a training batch norm's number of samples, which must be
    more than 1 (PyTorch raises ValueError; the unbiased variance would be 0/0).  Checked when
    the shape is static (at build time), else by every backend once the batch is fed: compiled
    ones re-infer the graph for each input shape, the interpreter in the reference.  With a
    fed training flag (the node's second input) only a call that trains is checked: compiled
    backends note the shapes counting one sample (``one_sample_checks``) and read the flag at
    each call (``runtime.specializing``), the interpreter in the reference."""
    if attrs.get("batch_stats") and None not in shape \
            and int(np.prod([shape[a] for a in attrs["axes"]])) == 1:
        raise error(batch_stats_message(shape))


def batch_stats_message(shape) -> str:
    return (f"batch_norm: expected more than 1 value per channel when training, "
            f"got input shape {format_shape(tuple(shape))}")


def _size_of_infer(inputs, attrs):
    if len(inputs) == 2:
        flag = inputs[1]
        if not (attrs.get("batch_stats") and flag.shape == () and flag.dtype == "bool"):
            raise ShapeError(f"size_of: a second input is a batch norm's training flag (a "
                             f"boolean scalar, with batch_stats), got {format_shape(flag.shape)} "
                             f"{flag.dtype}")
    else:  # training is on: a static batch of one is an error now
        _check_batch_stats(attrs, inputs[0].shape)
    return (), attrs["dtype"]


def _size_of_ref(node, x, training=True):
    if bool(training):  # (the interpreter says where)
        _check_batch_stats(node.attrs, np.shape(x), ValueError)
    return np.asarray(np.prod([np.shape(x)[a] for a in node.attrs["axes"]]), dtype=node.dtype)


register(OpDef("size_of", _size_of_infer, _size_of_ref,
               lambda node, g: [None] * len(node.inputs), kind="shape",
               differentiable=False, shape_only=(0,)))


def size_of(x: Tensor, axes=None, dtype=None, batch_stats=False) -> Tensor:
    """Number of elements of ``x`` along ``axes`` at run time, as a scalar of ``dtype``
    (``batch_stats``: a ValueError when it is 1, see ``_check_batch_stats``; True, or a boolean
    scalar tensor, the training flag: an error only in the calls where it is true)."""
    axes = normalize_axes("size_of", axes, x.ndim, x.shape)
    dtype = dtype or (x.dtype if is_float(x.dtype) else "float32")
    extra = {"batch_stats": True} if isinstance(batch_stats, Tensor) or batch_stats else {}
    flag = [batch_stats] if isinstance(batch_stats, Tensor) else []
    return make("size_of", [x] + flag, axes=axes, dtype=np.dtype(dtype).name, **extra)


# -- gradient plumbing ------------------------------------------------------------------------

register(OpDef("stop_gradient", lambda inputs, attrs: (inputs[0].shape, inputs[0].dtype),
               lambda node, x: x, lambda node, g: [None], kind="layout"))


def stop_gradient(t: Tensor) -> Tensor:
    """Identity whose gradient is zero."""
    return make("stop_gradient", [as_tensor(t)])


def zeros_like(x: Tensor) -> Tensor:
    """Zeros of ``x``'s (runtime) shape and dtype."""
    return make("fill_like", [x], value=0.0)


register(OpDef("fill_like", lambda inputs, attrs: (inputs[0].shape, inputs[0].dtype),
               lambda node, x: np.full(np.shape(x), node.attrs["value"], dtype=node.dtype),
               lambda node, g: [None], kind="elementwise", shape_only=(0,)))


def ones_like(x: Tensor) -> Tensor:
    """Ones of ``x``'s (runtime) shape and dtype."""
    return make("fill_like", [x], value=1.0)
