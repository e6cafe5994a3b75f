"""Optimizers as graph builders: ``opt.updates(params, grads)`` returns the ``updates`` list of
``gc.compile``, so one compiled call does forward, backward and the parameter update.

Each optimizer follows the update rule of its PyTorch namesake exactly (``torch.optim.SGD``,
``Adam``, ``RMSprop`` with their default options otherwise), so a graphc run and a PyTorch run
from the same weights take the same steps.

Optimizer state (momentum buffers, moment estimates, Adam's step counter) lives in
``trainable=False`` parameters that the optimizer creates, named after the parameter they serve
(``f"{p.name}_m"``, ...).  The state is kept per parameter: calling ``updates`` again for the same
parameters (a second ``fit`` with the same optimizer, another backend) reuses it, as a PyTorch
optimizer keeps its ``state`` across epochs.

One deliberate difference: state values below the dtype's smallest normal number (1.2e-38 in
float32) are stored as 0 (momentum buffers always; Adam's moments and RMSProp's average when
``eps >= FLUSH_MIN_EPS``).  PyTorch keeps such subnormals, which decaying state of units whose
gradient is 0 reaches and never leaves, and every operation on them is 10-100x slower on Intel
cores; the parameters' updates are the same to float rounding.

The hyper-parameters given as numbers are baked into the graph as constants when ``updates`` is
called; changing ``opt.lr`` afterwards affects graphs built later only (``Sequential.fit``
rebuilds its training step when the optimizer's settings change).  For a learning-rate schedule
without recompiling, pass ``lr`` as a scalar float tensor instead: a non-trainable parameter
whose ``.value`` you set between steps (as PyTorch's ``param_groups[0]["lr"] = ...``), a
placeholder fed with every call, or any scalar expression of them (``base * gc.exp(-k * t)``)::

    lr = gc.parameter(np.float32(0.1), name="lr", trainable=False)
    f = gc.compile([x, y], loss, updates=gc.optim.SGD(lr, momentum=0.9).updates(params, grads))
    for epoch in range(epochs):
        lr.value = 0.1 * 0.5 ** (epoch // 10)   # takes effect at the next call of f
        ...
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .ir import Tensor
from .ops import core as C
from .ops import elementwise as E
from .ops.core import as_tensor, parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "get", "clip_grad_norm"]


def _const(value: float, like: Tensor) -> Tensor:
    """A scalar constant in ``like``'s float dtype (float64 graphs stay float64)."""
    return as_tensor(np.array(value, dtype=like.dtype))


class Optimizer:
    """Base class: subclasses implement ``_update(p, g)`` returning the (parameter, new value)
    pairs for one parameter, state parameters included."""

    #: names of the hyper-parameters (constructor arguments) reported by ``config()``
    _fields: tuple[str, ...] = ("lr",)
    #: weight_decay as PyTorch's coupled L2 (added to the gradient); AdamW decays the weights
    _coupled_decay = True

    def __init__(self, lr: float | Tensor, weight_decay: float = 0.0):
        if isinstance(lr, Tensor):  # a schedule: the graph reads it at every step
            if tuple(lr.shape) != () or np.dtype(lr.dtype).kind != "f":
                raise ValueError(f"{type(self).__name__}: lr must be a number or a scalar float "
                                 f"tensor, got {lr.name} with shape {tuple(lr.shape)} and dtype "
                                 f"{np.dtype(lr.dtype).name}")
            if lr.op == "parameter" and lr.trainable:
                raise ValueError(f"{type(self).__name__}: the learning-rate parameter {lr.name} "
                                 f"must be trainable=False (an optimizer or fit would train it)")
        # NaN or inf would turn every weight into NaN at the first step; 0 is allowed, as in
        # PyTorch (a warm-up schedule's first value, parameters frozen with their state kept)
        elif not 0.0 <= float(lr) < math.inf:
            raise ValueError(f"{type(self).__name__}: lr must be finite and >= 0, got {lr}")
        if not 0.0 <= float(weight_decay) < math.inf:
            raise ValueError(f"{type(self).__name__}: weight_decay must be finite and >= 0, "
                             f"got {weight_decay}")
        self.lr = lr if isinstance(lr, Tensor) else float(lr)
        self.weight_decay = float(weight_decay)
        self._state: dict[tuple, Tensor] = {}

    # -- public API ------------------------------------------------------------------------
    def config(self) -> dict:
        """The optimizer's name and hyper-parameters (JSON-friendly, but for an lr tensor)."""
        cfg = {"name": type(self).__name__}
        cfg.update({f: getattr(self, f) for f in self._fields})
        return cfg

    def updates(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[tuple]:
        """The ``updates`` list for ``gc.compile``: one training step of every parameter in
        ``params`` given its gradient in ``grads`` (both lists of the same length)."""
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}.updates: {len(params)} parameters but "
                             f"{len(grads)} gradients")
        for p, g in zip(params, grads):
            if not isinstance(p, Tensor) or p.op != "parameter":
                raise TypeError(f"{type(self).__name__}.updates: {p!r} is not a parameter")
            if np.dtype(p.dtype).kind != "f":
                raise TypeError(f"{type(self).__name__}.updates: parameter {p.name} is "
                                f"{p.dtype}, not a float")
            if tuple(g.shape) != tuple(p.shape):
                raise ValueError(f"{type(self).__name__}.updates: gradient of {p.name} has "
                                 f"shape {g.shape}, parameter {p.shape}")
        seen: set[int] = set()
        for p in params:
            if p.id in seen:  # two updates of one parameter (and of its state) in one step
                raise ValueError(f"{type(self).__name__}.updates: parameter {p.name} is listed "
                                 f"more than once")
            seen.add(p.id)
        out: list[tuple] = []
        for p, g in zip(params, grads):
            g = as_tensor(g, like=p)
            if self.weight_decay and self._coupled_decay:
                # coupled L2 (PyTorch's weight_decay): g <- g + wd * p
                g = E.add(g, E.mul(_const(self.weight_decay, p), p))
            out.extend(self._update(p, g))
        return out

    def state(self, param: Tensor, kind: str, init: float = 0.0, shape=None,
              dtype=None) -> Tensor:
        """The optimizer's ``kind`` state parameter for ``param`` (created on first use), shaped
        like ``param`` unless ``shape`` / ``dtype`` say otherwise."""
        key = (param.id, kind)
        if key not in self._state:
            shape = param.shape if shape is None else shape
            dtype = param.dtype if dtype is None else dtype
            self._state[key] = parameter(np.full(shape, init, dtype=dtype),
                                         name=f"{param.name}_{kind}", trainable=False)
        return self._state[key]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # -- for subclasses ---------------------------------------------------------------------
    def _update(self, p: Tensor, g: Tensor) -> list[tuple]:
        raise NotImplementedError

    def _lr(self, p: Tensor) -> Tensor:
        """The learning rate in ``p``'s dtype: a constant, or the lr tensor (cast when the
        parameter's float type differs, e.g. a float32 lr for a float64 model)."""
        if not isinstance(self.lr, Tensor):
            return _const(self.lr, p)
        return self.lr if self.lr.dtype == p.dtype else E.cast(self.lr, p.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``::

        g   = grad + weight_decay * p
        buf = momentum * buf + g          (buf starts at 0, so the first step sets buf = g)
        g   = g + momentum * buf          if nesterov else buf     (when momentum > 0)
        p   = p - lr * g
    """

    _fields = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr: float | Tensor = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        if not 0.0 <= float(momentum) < 1.0 + 1e-12:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum}")
        if nesterov and not momentum:
            raise ValueError("SGD: nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, p, g):
        lr = self._lr(p)
        if not self.momentum:
            return [(p, E.sub(p, E.mul(lr, g)))]
        buf = self.state(p, "momentum")
        new_buf = _flush_subnormal(E.add(E.mul(_const(self.momentum, p), buf), g))
        direction = E.add(g, E.mul(_const(self.momentum, p), new_buf)) if self.nesterov \
            else new_buf
        return [(buf, new_buf), (p, E.sub(p, E.mul(lr, direction)))]


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (bias corrections in PyTorch's form, step t from 1)::

        t = t + 1
        m = m + (1 - beta1) * (g - m)         (PyTorch's lerp_)
        v = beta2 * v + (1 - beta2) * g^2     (1 - beta rounded from double, as PyTorch's)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
                                              (1 - beta^t as -expm1(t log beta), log in double)

    Each parameter has its own step counter ``t`` (``state[p]["step"]`` in PyTorch), a float32
    scalar parameter updated in the same ``updates`` list (exact up to 2^24 steps); the bias
    corrections are computed in the graph from it.  A parameter left out of some steps (trained
    by another compiled function, or frozen for a while) keeps its own count, as in PyTorch.

    ``amsgrad=True`` (Reddi et al.): the denominator uses the running maximum of ``v``
    (``vmax = max(vmax, v)``, state ``f"{p.name}_vmax"``), as PyTorch's ``amsgrad``.
    """

    _fields = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")

    def __init__(self, lr: float | Tensor = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(lr, weight_decay)
        self.amsgrad = bool(amsgrad)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"Adam: {name} must be in [0, 1), got {b}")
        _check_eps("Adam", eps)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _update(self, p, g):
        m, v = self.state(p, "m"), self.state(p, "v")
        t = self.state(p, "step", shape=(), dtype="float32")
        t_new = E.add(t, _const(1.0, t))
        m_new = _lerp(m, g, 1.0 - self.beta1)
        v_new = E.add(E.mul(_const(self.beta2, p), v),
                      E.mul(_const(1.0 - self.beta2, p), E.square(g)))
        if self.eps >= FLUSH_MIN_EPS:  # with eps ~ 0, m / sqrt(v) of subnormals is no noise
            m_new, v_new = _flush_subnormal(m_new), _flush_subnormal(v_new)
        step = E.cast(t_new, p.dtype)
        bc1, bc2 = _bias_correction(self.beta1, step), _bias_correction(self.beta2, step)
        extra = []
        v_used = v_new
        if self.amsgrad:
            vmax = self.state(p, "vmax")
            v_used = E.maximum(vmax, v_new)
            extra = [(vmax, v_used)]
        denom = E.add(E.div(E.sqrt(v_used), E.sqrt(bc2)), _const(self.eps, p))
        step_size = E.div(self._lr(p), bc1)
        p_new = E.sub(self._decayed(p), E.mul(step_size, E.div(m_new, denom)))
        return [(t, t_new), (m, m_new), (v, v_new)] + extra + [(p, p_new)]

    def _decayed(self, p: Tensor) -> Tensor:
        """The parameter the step starts from (AdamW: decayed first)."""
        return p


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay (Loshchilov & Hutter),
    the weights shrunk before the Adam step instead of ``weight_decay * p`` added to the
    gradient::

        p = p * (1 - lr * weight_decay)       (1 - lr * weight_decay in double, as PyTorch's)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    with m, v and t as in :class:`Adam`; PyTorch's default ``weight_decay`` is 0.01."""

    _coupled_decay = False

    def __init__(self, lr: float | Tensor = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(lr, beta1, beta2, eps, weight_decay, amsgrad)

    def _decayed(self, p):
        if not self.weight_decay:
            return p
        if isinstance(self.lr, Tensor):
            keep = E.sub(_const(1.0, p), E.mul(self._lr(p), _const(self.weight_decay, p)))
        else:
            keep = _const(1.0 - self.lr * self.weight_decay, p)
        return E.mul(p, keep)


def _bias_correction(beta: float, step: Tensor) -> Tensor:
    """1 - beta^step as -expm1(step * log(beta)), log(beta) taken in double: 1 - pow(beta, t)
    in float32 used beta rounded to float32 (0.999 -> 0.99900001), 1.3e-5 off at t = 1, where
    PyTorch computes it in double."""
    if beta == 0.0:
        return _const(1.0, step)
    return E.neg(E.expm1(E.mul(step, _const(math.log(beta), step))))


def _lerp(a: Tensor, b: Tensor, w: float) -> Tensor:
    """a + w (b - a) as PyTorch's ``lerp_`` rounds it (Adam's first moment): that form for
    |w| < 0.5, else b - (b - a)(1 - w); weights are computed in double, then rounded."""
    if abs(w) < 0.5:
        return E.add(a, E.mul(_const(w, a), E.sub(b, a)))
    return E.sub(b, E.mul(E.sub(b, a), _const(1.0 - w, a)))


#: the smallest ``eps`` for which Adam and RMSProp flush subnormal state to zero: the flushed
#: magnitudes (below 1.2e-38 in float32) then change an update by less than lr * 1e-7
FLUSH_MIN_EPS = 1e-12


def _flush_subnormal(x: Tensor) -> Tensor:
    """``x`` with subnormal values (magnitude below the dtype's smallest normal number) set to 0.

    Why: optimizer state that decays geometrically (Adam's first moment and RMSProp's average
    when a unit's gradient is 0, momentum buffers) sinks into the subnormal range and stays
    there (0.9 * m rounds back to m below 5 ulps), and on Intel cores every arithmetic
    instruction with a subnormal operand takes a microcode assist: a 784-256-256-10 Adam epoch
    took 0.41 s, then 0.70 s and 0.98 s in the next two epochs (torch.optim as well: 1.03 ->
    1.47 s).  Flushing costs a compare per element in the fused update kernel; what it drops
    is below 1.2e-38 (float32) and does not change any parameter's update visibly."""
    tiny = _const(float(np.finfo(np.dtype(x.dtype)).tiny), x)
    return E.where(E.less(E.abs(x), tiny), _const(0.0, x), x)


def _check_eps(owner: str, eps) -> None:
    if not 0.0 <= float(eps) < math.inf:
        raise ValueError(f"{owner}: eps must be finite and >= 0, got {eps}")


class RMSProp(Optimizer):
    """RMSProp, as ``torch.optim.RMSprop`` (``alpha`` = ``rho``, not centered, no momentum)::

        v = rho * v + (1 - rho) * g^2          (v starts at 0)
        p = p - lr * g / (sqrt(v) + eps)
    """

    _fields = ("lr", "rho", "eps", "weight_decay")

    def __init__(self, lr: float | Tensor = 1e-2, rho: float = 0.9, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        if not 0.0 <= float(rho) < 1.0:
            raise ValueError(f"RMSProp: rho must be in [0, 1), got {rho}")
        _check_eps("RMSProp", eps)
        self.rho, self.eps = float(rho), float(eps)

    def _update(self, p, g):
        v = self.state(p, "v")
        rho = _const(self.rho, p)
        v_new = E.add(E.mul(rho, v), E.mul(_const(1.0 - self.rho, p), E.square(g)))
        if self.eps >= FLUSH_MIN_EPS:  # with eps ~ 0, g / sqrt(v) would divide by the 0
            v_new = _flush_subnormal(v_new)
        denom = E.add(E.sqrt(v_new), _const(self.eps, p))
        return [(v, v_new), (p, E.sub(p, E.mul(self._lr(p), E.div(g, denom))))]


RMSprop = RMSProp  # PyTorch's spelling

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSProp}


def clip_grad_norm(grads: Sequence[Tensor], max_norm: float, norm_type: float = 2.0
                   ) -> tuple[list[Tensor], Tensor]:
    """Gradients scaled down to a total norm of at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` (which scales them in place)::

        total = (sum over all elements of all grads of |g|^norm_type)^(1 / norm_type)
                (max |g| for norm_type = inf)
        g = g * min(max_norm / (total + 1e-6), 1)

    Returns ``(clipped grads, total)``: the norm before clipping, a scalar tensor (in the
    widest float type of the grads) to return from the compiled function for logging.  Pass
    the clipped list to ``opt.updates(params, clipped)``."""
    grads = [g if isinstance(g, Tensor) else as_tensor(g) for g in grads]
    if not grads:
        raise ValueError("clip_grad_norm: no gradients")
    for g in grads:
        if np.dtype(g.dtype).kind != "f":
            raise TypeError(f"clip_grad_norm: gradient {g.name} is {np.dtype(g.dtype).name}, "
                            f"not a float")
    if not 0.0 <= float(max_norm) < math.inf:
        raise ValueError(f"clip_grad_norm: max_norm must be finite and >= 0, got {max_norm}")
    norm_type = float(norm_type)
    if not (norm_type > 0.0):
        raise ValueError(f"clip_grad_norm: norm_type must be > 0 or inf, got {norm_type}")
    wide = max((np.dtype(g.dtype) for g in grads), key=lambda d: d.itemsize)
    terms = [E.cast(g, wide) if np.dtype(g.dtype) != wide else g for g in grads]
    one = as_tensor(np.array(1.0, dtype=wide))
    if norm_type == math.inf:
        total = C.max(E.abs(terms[0]))
        for t in terms[1:]:
            total = E.maximum(total, C.max(E.abs(t)))
    else:
        def power_sum(t):
            if norm_type == 2.0:
                return C.sum(E.square(t))
            a = E.abs(t)
            return C.sum(a if norm_type == 1.0 else E.pow(a, as_tensor(np.array(norm_type, wide))))
        acc = power_sum(terms[0])
        for t in terms[1:]:
            acc = E.add(acc, power_sum(t))
        total = acc if norm_type == 1.0 else E.sqrt(acc) if norm_type == 2.0 else \
            E.pow(acc, as_tensor(np.array(1.0 / norm_type, wide)))
    coef = E.minimum(E.div(as_tensor(np.array(max_norm, wide)),
                           E.add(total, as_tensor(np.array(1e-6, wide)))), one)
    clipped = [E.mul(g, coef if np.dtype(g.dtype) == wide else E.cast(coef, g.dtype))
               for g in grads]
    return clipped, total


def get(spec, **kwargs) -> Optimizer:
    """An optimizer from an instance (returned as is) or a name (``"sgd"``, ``"adam"``,
    ``"adamw"``, ``"rmsprop"``; case-insensitive) with constructor ``kwargs``."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()](**kwargs)
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        name = spec.__name__.lower()
        raise ValueError(f"optimizer {spec.__name__} is a class: pass an instance, e.g. "
                         f"{spec.__name__}(lr=...)"
                         + (f", or its name {name!r}" if name in _BY_NAME else ""))
    raise ValueError(f"unknown optimizer {spec!r}; expected an Optimizer or one of "
                     f"{sorted(_BY_NAME)}")
