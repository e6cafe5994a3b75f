"""Neural-network ops: row-wise softmax family, losses, penalties, dropout, batch norm, maxout.

Softmax, log-softmax, logsumexp and softmax-cross-entropy are primitives (backends fuse them
into one row kernel); everything else is composed from primitives so every backend runs it.
"""
from __future__ import annotations

import builtins
import itertools

import numpy as np

from ..errors import AxisError, ShapeError
from ..ir import Tensor, format_shape, is_float
from . import elementwise as E
from .core import (as_tensor, broadcast_like, constant, expand_dims, make, max, mean, parameter,
                   reshape, sum)
from .registry import OpDef, normalize_axes, register


def _shifted(x, axis, for_lse=False):
    """(m, x - m, log(sum(exp(x - m)))) with m the max over ``axis`` (kept).  Results are
    formed from x - m, not as x - lse: at large |x| (1e4) lse's rounding costs the digits of
    log(sum) (cross_entropy gave 0.693359 for log 2).  Where the max is not finite: an all -inf
    (or empty) row shifts by 0 (its terms are exp(-inf) = 0: lse -inf, softmax 0/0 = NaN); a row
    holding +inf shifts by 0 for logsumexp (+inf), but by +inf for softmax, log_softmax and
    cross-entropy, whose row then is NaN throughout (inf - inf), as in PyTorch."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # an empty axis too (lse = -inf)
    m = np.where(np.isfinite(m) if for_lse else m != -np.inf, m, 0)
    z = x - m
    with np.errstate(divide="ignore"):
        return m, z, np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _stable_lse(x, axis, keepdims=True):
    x = np.asarray(x)
    if x.dtype.kind in "iub":  # x - m would wrap for unsigned types, int8 would compute in float16
        x = x.astype(np.float64)
    m, _, log_sum = _shifted(x, axis, for_lse=True)
    out = log_sum + m
    return out if keepdims else np.squeeze(out, axis=axis)


# -- softmax family (one axis) ----------------------------------------------------------------

def _same_infer(inputs, attrs):
    t = inputs[0]
    normalize_axes("softmax", attrs["axis"], t.ndim, t.shape)
    if not is_float(t.dtype):
        raise ShapeError(f"softmax: expects a float tensor, got {t.dtype}")
    return t.shape, t.dtype


def _softmax_ref(node, x):
    _, z, log_sum = _shifted(x, node.attrs["axis"])
    return np.exp(z - log_sum).astype(node.dtype)


def _softmax_grad(node, g):
    # y * (g - sum(g * y))
    y, ax = node, node.attrs["axis"]
    s = broadcast_like(sum(E.mul(g, y), axis=ax, keepdims=True), y)
    return [E.mul(y, E.sub(g, s))]


def _log_softmax_ref(node, x):
    _, z, log_sum = _shifted(x, node.attrs["axis"])
    return (z - log_sum).astype(node.dtype)


def _log_softmax_grad(node, g):
    # g - softmax(x) * sum(g)
    ax = node.attrs["axis"]
    s = broadcast_like(sum(g, axis=ax, keepdims=True), node)
    return [E.sub(g, E.mul(E.exp(node), s))]


register(OpDef("softmax", _same_infer, _softmax_ref, _softmax_grad, kind="rowwise"))
register(OpDef("log_softmax", _same_infer, _log_softmax_ref, _log_softmax_grad, kind="rowwise"))


def _scalar_axes(op: str, t: Tensor, axis):
    """A 0-d tensor's axis as PyTorch reads it: 0 and -1 (or None) name its one implicit
    dimension, anything else is out of range."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else () if axis is None else tuple(axis)
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) \
                or a not in (0, -1):
            raise AxisError(f"{op}: axis {a} out of range for shape () (0 or -1 name the "
                             f"only dimension of a 0-d tensor)")


def _rowwise(op: str, t, axis) -> Tensor:
    t = as_tensor(t)
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        # one axis (as PyTorch's dim): None or a tuple took the first of the axes they name,
        # softmax(x, None) of a matrix normalized its columns
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if t.ndim == 0:
        # a 0-d tensor is one row of one element (PyTorch: softmax 1, log_softmax 0; NaN for
        # +-inf and NaN), computed as that row so the values and gradients are the row's
        _scalar_axes(op, t, axis)
        return reshape(make(op, [reshape(t, (1,))], axis=0), ())
    return make(op, [t], axis=normalize_axes(op, axis, t.ndim, t.shape)[0])


def softmax(t, axis=-1) -> Tensor:
    """``exp(t) / sum(exp(t))`` along ``axis`` (one int, default the last), computed stably
    (the row maximum subtracted first), as ``torch.softmax``; a 0-d tensor gives 1.  An axis
    out of range is a ``gc.AxisError`` (a ``ShapeError`` and an ``IndexError``); an axis that
    is not an int a ``TypeError``."""
    return _rowwise("softmax", t, axis)


def log_softmax(t, axis=-1) -> Tensor:
    """``t - logsumexp(t, axis, keepdims=True)``: the log of ``softmax(t, axis)`` computed
    stably, as ``torch.log_softmax``; a 0-d tensor gives 0.  Errors as ``softmax``."""
    return _rowwise("log_softmax", t, axis)


def _lse_infer(inputs, attrs):
    t = inputs[0]
    axes, keep = attrs["axes"], attrs["keepdims"]
    # integer input gives a float result, as mean does
    return tuple((1 if i in axes else d) for i, d in enumerate(t.shape)
                 if keep or i not in axes), t.dtype if is_float(t.dtype) else "float32"


def _lse_grad(node, g):
    x, axes = node.inputs[0], node.attrs["axes"]
    keep = (lambda t: t) if node.attrs["keepdims"] else (lambda t: expand_dims(t, axes))
    lse = broadcast_like(keep(node), x)
    return [E.mul(broadcast_like(keep(g), x), E.exp(E.sub(x, lse)))]


register(OpDef("logsumexp", _lse_infer,
               lambda node, x: _stable_lse(x, node.attrs["axes"], node.attrs["keepdims"]
                                           ).astype(node.dtype),
               _lse_grad, kind="reduce"))


def logsumexp(t, axis=None, keepdims=False) -> Tensor:
    """log(sum(exp(t))) over ``axis``, computed stably."""
    t = as_tensor(t)
    if t.ndim == 0:
        _scalar_axes("logsumexp", t, axis)  # (PyTorch's dim 0 / -1 of a 0-d tensor)
        axes = ()
    else:
        axes = normalize_axes("logsumexp", axis, t.ndim, t.shape)
    return make("logsumexp", [t], axes=axes, keepdims=bool(keepdims))


# -- cross-entropy ----------------------------------------------------------------------------

def _xent_infer(inputs, attrs):
    logits, labels = inputs
    if logits.ndim != 2 or labels.ndim != 1:
        raise ShapeError(f"cross_entropy: expects logits (N, C) and labels (N,), got "
                         f"{format_shape(logits.shape)} and {format_shape(labels.shape)}")
    n1, n2 = logits.shape[0], labels.shape[0]
    if n1 is not None and n2 is not None and n1 != n2:
        raise ShapeError(f"cross_entropy: batch sizes differ: logits "
                         f"{format_shape(logits.shape)} and labels {format_shape(labels.shape)}")
    if labels.dtype[0] not in "iu" or not is_float(logits.dtype):
        raise ShapeError(f"cross_entropy: expects float logits and integer labels, got "
                         f"{logits.dtype} and {labels.dtype}")
    return (n1 if n1 is not None else n2,), logits.dtype


def _xent_ref(node, logits, labels):
    n, c = logits.shape
    labels = np.asarray(labels)
    src = node.inputs[1]
    where = f" in input {src.name!r}" if src.op == "placeholder" else ""
    if labels.shape[0] != n:
        raise ShapeError(f"cross_entropy: batch sizes differ: logits {format_shape(logits.shape)}"
                         f" and labels {format_shape(labels.shape)}{where}")
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        # (the interpreter applies updates after every node ran: nothing was updated)
        raise ValueError(f"cross_entropy: labels must be in [0, {c}), got range "
                         f"[{labels.min()}, {labels.max()}]{where}; nothing was updated")
    m, _, log_sum = _shifted(logits, 1)
    picked = logits[np.arange(n), labels]
    return ((m[:, 0] - picked) + log_sum[:, 0]).astype(node.dtype)


def one_hot(labels: Tensor, depth: int, dtype="float32") -> Tensor:
    """Rows of the identity matrix picked by integer ``labels`` (shape labels.shape + (depth,))."""
    classes = constant(np.arange(depth, dtype=labels.dtype))
    return E.cast(E.equal(expand_dims(labels, -1), classes), dtype)


def _xent_grad(node, g):
    logits, labels = node.inputs
    return [make("softmax_cross_entropy_grad", [logits, labels, g]), None]


register(OpDef("softmax_cross_entropy", _xent_infer, _xent_ref, _xent_grad, kind="rowwise"))


# softmax_cross_entropy_grad(logits, labels, g) = (softmax(logits) - one_hot(labels)) * g[:, None]:
# the cross-entropy's backward as one row op (as TensorFlow's SparseSoftmaxCrossEntropyWithLogits
# returns it), so backends compute it in one pass over the logits, and with the forward in the
# same kernel when the row weights g do not depend on the losses (graphc/lower).
def _xent_grad_infer(inputs, attrs):
    logits, labels, g = inputs
    _xent_infer([logits, labels], attrs)
    n = logits.shape[0] if logits.shape[0] is not None else labels.shape[0]
    if g.ndim != 1 or g.dtype != logits.dtype or (
            n is not None and g.shape[0] is not None and g.shape[0] != n):
        raise ShapeError(f"softmax_cross_entropy_grad: expects row weights ({n},) "
                         f"{logits.dtype}, got {format_shape(g.shape)} {g.dtype}")
    return logits.shape, logits.dtype


def _xent_grad_ref(node, logits, labels, g):
    n, c = logits.shape
    _xent_ref(node, logits, labels)  # the same label check
    _, z, log_sum = _shifted(logits, 1)
    delta = np.exp(z - log_sum)
    delta[np.arange(n), np.asarray(labels)] -= 1
    return (delta * np.asarray(g)[:, None]).astype(node.dtype)


def _xent_grad_grad(node, u):
    """Second order (Hessian-vector products through the loss), from the op's definition:
    d/dlogits is softmax's Jacobian applied to u * g; d/dg sums u * (softmax - one_hot) per row."""
    logits, labels, g = node.inputs
    s = softmax(logits, -1)
    dlogits = _softmax_grad(s, E.mul(u, expand_dims(g, -1)))[0]
    if logits.shape[1] is None:
        # a free class count: no static one_hot (its depth was None, a TypeError); the op
        # itself with row weights 1 is softmax - one_hot
        from .core import ones_like
        delta = make("softmax_cross_entropy_grad", [logits, labels, ones_like(g)])
    else:
        delta = E.sub(s, one_hot(labels, logits.shape[1], logits.dtype))
    return [dlogits, None, sum(E.mul(u, delta), axis=1)]


register(OpDef("softmax_cross_entropy_grad", _xent_grad_infer, _xent_grad_ref, _xent_grad_grad,
               kind="rowwise"))


def _reduce_loss(op: str, per_element: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return mean(per_element)
    if reduction == "sum":
        return sum(per_element)
    if reduction == "none":
        return per_element
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, labels, reduction="mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of (N, C) ``logits`` against integer class ``labels`` (N,).

    As in PyTorch, also of (C,) logits against one label of shape (), and of (N, C, d1, ...)
    logits against labels (N, d1, ...): one loss per position (the mean is over all of them).
    ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"``.  Float or one-hot labels,
    or shapes that do not match, raise ``gc.ShapeError`` (a ``ValueError``); labels out of
    range [0, C) raise ``ValueError`` when the compiled function runs.

    ``label_smoothing`` in [0, 1] (PyTorch's): the target is ``1 - label_smoothing`` on the
    label plus ``label_smoothing / C`` on every class, so each position's loss is
    ``(1 - e) * ce + e * (logsumexp(z) - mean(z))`` (the second term: the mean over the classes
    of ``-log softmax(z)``)."""
    from .core import reshape_like, transpose
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    logits, labels = as_tensor(logits), as_tensor(labels)
    if labels.ndim == 1 and labels.dtype[0] not in "iu":
        raise ShapeError(f"cross_entropy: labels must be integers, got {labels.dtype}")
    nd = logits.ndim
    if (nd == 1 and labels.ndim == 0) or (nd > 2 and labels.ndim == nd - 1):
        rest = (logits.shape[:1] + logits.shape[2:], labels.shape)
        if nd > 2 and any(a is not None and b is not None and a != b for a, b in zip(*rest)):
            raise ShapeError(f"cross_entropy: logits {format_shape(logits.shape)} (N, C, d1, ...)"
                             f" need labels (N, d1, ...), got {format_shape(labels.shape)}")
        # the classes' axis last, one row per position
        rows = transpose(logits, (0,) + tuple(range(2, nd)) + (1,)) if nd > 2 else logits
        classes = logits.shape[-1] if nd == 1 else logits.shape[1]
        if classes is None:
            # a free class axis: the row count is then the known one (a target (-1, None) was
            # "at most one -1/None" from reshape)
            positions = () if nd == 1 else logits.shape[:1] + logits.shape[2:]
            if None in positions:
                raise ShapeError(f"cross_entropy: logits {format_shape(logits.shape)} may have a "
                                 f"free class axis or free positions, not both")
            rows = reshape(rows, (int(np.prod(positions)), -1))
        else:
            rows = reshape(rows, (-1, classes))
        per = _smoothed(make("softmax_cross_entropy", [rows, reshape(labels, (-1,))]), rows, eps)
        return _reduce_loss("cross_entropy", reshape_like(per, labels), reduction)
    per = make("softmax_cross_entropy", [logits, labels])
    return _reduce_loss("cross_entropy", _smoothed(per, logits, eps), reduction)


def _smoothed(per: Tensor, rows: Tensor, eps: float) -> Tensor:
    """Per-row cross-entropy ``per`` of (R, C) ``rows`` with label smoothing ``eps``."""
    if not eps:
        return per
    uniform = E.sub(logsumexp(rows, axis=-1), mean(rows, axis=-1))
    if eps == 1.0:
        return uniform
    return E.add(E.mul(per, 1.0 - eps), E.mul(uniform, eps))


def _check_same(op, a: Tensor, b: Tensor):
    from .registry import broadcast_shapes
    out = broadcast_shapes(op, a.shape, b.shape)
    if len(a.shape) != len(out) or any(x is not None and y is not None and x != y
                                        for x, y in zip(a.shape, out)):
        raise ShapeError(f"{op}: target shape {format_shape(b.shape)} does not match "
                         f"prediction shape {format_shape(a.shape)}")


def mse(pred, target, reduction="mean") -> Tensor:
    """Mean squared error: the mean (``reduction="mean"``), the sum (``"sum"``) or the
    per-element values (``"none"``) of ``(pred - target) ** 2``; ``target`` broadcasts
    against ``pred`` as in numpy (incompatible shapes: ``gc.ShapeError``)."""
    pred = as_tensor(pred)
    target = as_tensor(target, like=pred)
    _check_same("mse", pred, target)
    return _reduce_loss("mse", E.square(E.sub(pred, target)), reduction)


def binary_cross_entropy(prob, target, reduction="mean") -> Tensor:
    """Binary cross-entropy of probabilities ``prob`` in [0, 1] against ``target``
    (``-(t log p + (1 - t) log(1 - p))``, logs clamped at -100, as PyTorch); ``reduction``
    ``"mean"`` (default), ``"sum"`` or ``"none"``."""
    prob = as_tensor(prob)
    target = as_tensor(target, like=prob)
    _check_same("binary_cross_entropy", prob, target)
    return _reduce_loss("binary_cross_entropy",
                        E.binary_cross_entropy_elementwise(prob, target), reduction)


def binary_cross_entropy_with_logits(logits, target, reduction="mean") -> Tensor:
    """Binary cross-entropy of ``sigmoid(logits)`` against ``target``, in the stable form
    ``softplus(x) - x t`` (``torch.nn.functional.binary_cross_entropy_with_logits``);
    ``reduction`` ``"mean"`` (default), ``"sum"`` or ``"none"``."""
    logits = as_tensor(logits)
    target = as_tensor(target, like=logits)
    _check_same("binary_cross_entropy_with_logits", logits, target)
    return _reduce_loss("binary_cross_entropy_with_logits",
                        E.bce_with_logits_elementwise(logits, target), reduction)


def _tensor_list(tensors):
    if isinstance(tensors, Tensor):
        return [tensors]
    tensors = list(tensors)
    # values mixed in take the float dtype of the tensors, as operands of any op do (a Python
    # float made a float32 model's penalty float64); Python floats alone are float32 (constant)
    like = next((t for t in tensors if isinstance(t, Tensor) and is_float(t.dtype)), None)
    return [as_tensor(t, like=like) if like is not None else as_tensor(t)
            if isinstance(t, (Tensor, np.ndarray)) else constant(t) for t in tensors]


def l1_penalty(tensors) -> Tensor:
    """Sum of absolute values over all ``tensors``."""
    terms = [sum(E.abs(t)) for t in _tensor_list(tensors)]
    if not terms:
        return constant(0.0)
    return builtins.sum(terms[1:], terms[0]) if len(terms) > 1 else terms[0]


def l2_penalty(tensors) -> Tensor:
    """Sum of squares over all ``tensors`` (multiply by lambda/2 for the textbook penalty)."""
    terms = [sum(E.square(t)) for t in _tensor_list(tensors)]
    if not terms:
        return constant(0.0)
    out = terms[0]
    for t in terms[1:]:
        out = E.add(out, t)
    return out


# -- maxout -----------------------------------------------------------------------------------

def maxout(t, pieces: int, axis=-1) -> Tensor:
    """Split ``axis`` into consecutive groups of ``pieces``; unit j is the max of group j."""
    t = as_tensor(t)
    ax = normalize_axes("maxout", axis, t.ndim, t.shape)[0]
    d = t.shape[ax]
    if not isinstance(pieces, (int, np.integer)) or pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive int, got {pieces!r}")
    if d is None or d % pieces:
        raise ShapeError(f"maxout: axis {ax} of {format_shape(t.shape)} must be a known "
                         f"multiple of pieces={pieces}")
    shape = list(t.shape[:ax]) + [d // pieces, pieces] + list(t.shape[ax + 1:])
    if builtins.sum(s is None for s in shape) > 1:
        raise ShapeError(f"maxout: at most one free dimension, got {format_shape(t.shape)}")
    return max(reshape(t, shape), axis=ax + 1)


# -- dropout ----------------------------------------------------------------------------------

def _uniform_numpy(seed: int, counter: int, n: int) -> np.ndarray:
    """The counter-based generator every backend implements (splitmix64 of a mixed key)."""
    with np.errstate(over="ignore"):
        idx = np.arange(n, dtype=np.uint64)
        z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(counter) * np.uint64(0xD1B54A32D192ED03)
             + idx * np.uint64(0xBF58476D1CE4E5B9))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def _uniform_ref(node, counter, ref):
    shape = np.shape(ref)
    n = int(np.prod(shape))
    return _uniform_numpy(node.attrs["seed"], int(counter), n).reshape(shape).astype(node.dtype)


register(OpDef("random_uniform",
               lambda inputs, attrs: (inputs[1].shape, inputs[1].dtype if is_float(
                   inputs[1].dtype) else "float32"),
               _uniform_ref, lambda node, g: [None, None], kind="random", differentiable=False))

_seeds = itertools.count(0x5EED)


def _training_flag(op: str, training):
    if isinstance(training, (bool, np.bool_)):
        return bool(training)
    if isinstance(training, Tensor) and training.shape == () and training.dtype == "bool":
        return training
    raise TypeError(f"{op}: training must be a Python bool or a boolean scalar placeholder, "
                    f"got {training!r}")


def dropout(t, rate: float, training, seed=None) -> Tensor:
    """Inverted dropout: in training, keep each unit with probability 1-rate and scale it by
    1/(1-rate); otherwise the identity.  Each call of a compiled function draws a new mask
    (a counter parameter advances); masks are identical on every backend."""
    t = as_tensor(t)
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1], got {rate}")
    flag = _training_flag("dropout", training)
    if flag is False or rate == 0.0:
        return t
    if not is_float(t.dtype):
        # scaling the kept units by 1/(1-rate) needs a float (an int32 cast of 1/0.7 is 1)
        raise ShapeError(f"dropout: expects a float tensor, got {t.dtype}")
    if float(rate) == 1.0:
        # every unit dropped: t * 0 as PyTorch computes it (NaN for inf and NaN entries; the
        # constant 0 stays an operand, mul does not fold it), gradient 0; no mask to draw
        dropped = E.mul(t, 0.0)
        return dropped if flag is True else E.where(flag, dropped, t)
    seed = next(_seeds) if seed is None else int(seed) & 0xFFFFFFFFFFFFFFFF
    counter = parameter(np.array(0, dtype=np.int64), name="dropout_counter", trainable=False)
    u = make("random_uniform", [counter, t], seed=seed)
    keep = 1.0 / (1.0 - float(rate))
    scale = E.where(E.less(u, 1.0 - float(rate)), keep, 0.0)
    dropped = E.mul(t, E.cast(scale, t.dtype))
    out = dropped if flag is True else E.where(flag, dropped, t)
    bump = E.add(counter, 1)
    return _with_effects(out, [(counter, bump)])


def _with_effects(t: Tensor, effects) -> Tensor:
    """An identity node carrying implicit parameter updates (run when ``t`` is computed)."""
    return make("identity", [t], effects=tuple(effects))


register(OpDef("identity", lambda inputs, attrs: (inputs[0].shape, inputs[0].dtype),
               lambda node, x: x, lambda node, g: [g], kind="layout"))


# -- batch norm -------------------------------------------------------------------------------

def batch_norm(t, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Normalize over axis 0 with batch statistics (training) or the running ones (inference).

    In training the running statistics (``trainable=False`` parameters) are updated by every
    compiled call: ``r = (1-momentum) r + momentum * stat``, the variance unbiased (PyTorch)."""
    t = as_tensor(t)
    gamma, beta = as_tensor(gamma, like=t), as_tensor(beta, like=t)
    flag = _training_flag("batch_norm", training)
    features = t.shape[1:]
    for name, p in (("gamma", gamma), ("beta", beta)):
        # one value per feature (or fewer, broadcast over them): a gamma (N, C) or (C, 1)
        # changed the output's shape, a (5,) one for 4 features was reported as mul's error
        padded = (1,) * (len(t.shape) - len(p.shape)) + p.shape
        if len(padded) > len(t.shape) or padded[0] != 1 or any(
                d not in (1, f) and f is not None for d, f in zip(padded[1:], features)):
            raise ShapeError(f"batch_norm: {name} shape {format_shape(p.shape)} does not match "
                             f"features {format_shape(features)} of {format_shape(t.shape)}")
    for name, p in (("running_mean", running_mean), ("running_var", running_var)):
        if not isinstance(p, Tensor) or p.op != "parameter":
            raise TypeError(f"batch_norm: {name} must be a parameter")
        if p.shape != t.shape[1:]:
            raise ShapeError(f"batch_norm: {name} shape {format_shape(p.shape)} does not match "
                             f"features {format_shape(t.shape[1:])} of {format_shape(t.shape)}")

    def normalize(mu, var):
        return E.add(E.mul(gamma, E.div(E.sub(t, mu), E.sqrt(E.add(var, eps)))), beta)

    inference = normalize(running_mean, running_var)
    if flag is False:
        return inference
    mu = mean(t, axis=0)
    var = mean(E.square(E.sub(t, mu)), axis=0)
    train = normalize(mu, var)
    from .core import size_of
    # a batch of one sample is an error when training, as in PyTorch: always with training
    # True, in the calls feeding true with a boolean placeholder flag (size_of reads it)
    n = size_of(t, 0, dtype=t.dtype, batch_stats=flag)
    unbiased = E.div(E.mul(var, n), E.maximum(E.sub(n, 1.0), 1.0))
    new_mean = E.add(E.mul(running_mean, 1.0 - momentum), E.mul(mu, momentum))
    new_var = E.add(E.mul(running_var, 1.0 - momentum), E.mul(unbiased, momentum))
    if t.shape[0] is None or t.shape[0] == 0:
        # an empty batch has no statistics: the running ones stay as they are (PyTorch), not NaN
        nonempty = E.greater(n, 0.0)
        new_mean = E.where(nonempty, new_mean, running_mean)
        new_var = E.where(nonempty, new_var, running_var)
    if flag is True:
        out = train
    else:
        out = E.where(flag, train, inference)
        new_mean = E.where(flag, new_mean, running_mean)
        new_var = E.where(flag, new_var, running_var)
    from .core import stop_gradient
    return _with_effects(out, [(running_mean, stop_gradient(new_mean)),
                               (running_var, stop_gradient(new_var))])
