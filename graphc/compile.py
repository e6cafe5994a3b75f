"""``gc.compile``: passes -> backend -> a callable compiled function."""
from __future__ import annotations

import importlib
import threading
import weakref
from typing import Sequence

import numpy as np

from .errors import BackendUnavailable, ShapeError
from .ir import Tensor, collect_effects, format_shape, toposort
from .passes import run_pipeline
from .program import Program, check_feed

# backend name -> "module:factory"; factories take a Program and return an executable with
# run(feeds) -> outputs (updates applied), .source and memory_report().
BACKENDS = {
    "numpy": "graphc.runtime.interp:NumpyExecutable",
    "c": "graphc.runtime.cpu:CExecutable",
    "cuda": "graphc.runtime.cuda_backend:CudaExecutable",
    "opencl": "graphc.runtime.opencl_backend:OpenCLExecutable",
}


# one lock per parameter storage, shared by every compiled function that updates it: two
# different functions stepping the same parameter from two threads take turns (each would
# otherwise read the old value and one update would be lost)
_UPDATE_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_UPDATE_LOCKS_GUARD = threading.Lock()


def _update_locks(updates) -> tuple:
    """The locks of the parameters ``updates`` writes, in one global order (id of the storage)
    so that functions updating overlapping sets of parameters never deadlock."""
    stores = {id(p.attrs["store"]): p.attrs["store"] for p, _ in updates}
    with _UPDATE_LOCKS_GUARD:
        return tuple(_UPDATE_LOCKS.setdefault(stores[k], threading.Lock())
                     for k in sorted(stores))


def _backend_factory(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, factory = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("graphc"):
            raise BackendUnavailable(f"backend {name!r} is not built yet in this version of "
                                     f"graphc ({module} is missing)") from None
        raise BackendUnavailable(f"backend {name!r} needs the module {e.name!r}: {e}") from None
    return getattr(mod, factory)


class Function:
    """A compiled function: call it with the placeholders' values (positionally or by name)."""

    def __init__(self, inputs, outputs, single, program, executable, backend):
        self.inputs = inputs
        self.outputs = outputs
        self._single = single
        self.program = program
        self._exe = executable
        self.backend = backend
        # updates whose value has a free dimension: whether it fits the parameter is only known
        # once the inputs' shapes are (checked per input shapes, before anything runs)
        self._free_updates = [(p, v) for p, v in program.updates if None in v.shape]
        self._updates_fit: set = set()  # input shapes already checked
        self._update_locks = _update_locks(program.updates)

    @property
    def source(self):
        """The generated C or kernel text (None on the numpy backend)."""
        return self._exe.source

    def memory_report(self) -> dict:
        """Bytes per planned buffer and the peak."""
        return self._exe.memory_report()

    def profile(self) -> list:
        """``[(kernel name, seconds), ...]``: time per generated kernel, accumulated over the
        calls with the most recent input shapes.  C backend only; the times are non-zero when
        ``GRAPHC_PROFILE=1`` was set as the function compiled.  Raises ``NotImplementedError``
        on the other backends."""
        exe_profile = getattr(self._exe, "profile", None)
        if exe_profile is None:
            raise NotImplementedError(f"profile() needs backend='c', this function runs on "
                                      f"{self.backend!r}")
        return exe_profile()

    def _bind(self, args, kwargs) -> list[np.ndarray]:
        if len(args) > len(self.inputs):
            raise TypeError(f"compiled function takes {len(self.inputs)} inputs, got {len(args)}")
        values: list = list(args) + [None] * (len(self.inputs) - len(args))
        by_name = {p.name: i for i, p in enumerate(self.inputs)}
        for key, val in kwargs.items():
            if key not in by_name:
                raise TypeError(f"unknown input {key!r}; inputs are {list(by_name)}")
            if by_name[key] < len(args):
                raise TypeError(f"input {key!r} given twice")
            values[by_name[key]] = val
        missing = [p.name for p, v in zip(self.inputs, values) if v is None]
        if missing:
            raise TypeError(f"missing value for input(s) {missing}")
        return [check_feed(p, v) for p, v in zip(self.inputs, values)]

    def __call__(self, /, *args, **kwargs):  # (/: a placeholder may be named "self")
        # everything is validated before anything runs
        if not kwargs and len(args) == len(self.inputs):
            feeds = [check_feed(p, v) for p, v in zip(self.inputs, args)]
        else:
            feeds = self._bind(args, kwargs)
        if self._free_updates:
            self._check_update_shapes(feeds)
        if self._update_locks:
            outs = self._run_locked(feeds)
        else:
            outs = self._exe.run(feeds)
        return outs[0] if self._single else list(outs)

    def _run_locked(self, feeds):
        taken = []
        try:
            for lock in self._update_locks:
                lock.acquire()
                taken.append(lock)
            return self._exe.run(feeds)
        finally:
            for lock in reversed(taken):
                lock.release()

    def _check_update_shapes(self, feeds) -> None:
        """ValueError when an update value, at these inputs' shapes, does not fit its parameter
        (the compiled backends would silently write only part of it)."""
        key = tuple(f.shape for f in feeds)
        if key in self._updates_fit:
            return
        from .fusion import concretize
        try:
            values, _ = concretize([v for _, v in self._free_updates], self.program.inputs, key)
        except ShapeError:
            return  # inputs inconsistent with each other: the backend reports that, naming the op
        for (param, _), value in zip(self._free_updates, values):
            if not _update_fits(value.shape, param.shape):
                raise ValueError(f"update of parameter {param.name}: for these inputs the new "
                                 f"value has shape {format_shape(value.shape)}, which does not "
                                 f"fit the parameter's shape {format_shape(param.shape)}")
        self._updates_fit.add(key)

    def __reduce_ex__(self, protocol):
        # (pickle and copy.deepcopy otherwise fail deep inside cffi, pyopencl or a lock)
        raise TypeError("a compiled graphc function cannot be pickled or deep-copied: it holds "
                        "loaded machine code and device buffers; save the graph "
                        "(gc.export.to_json, or model.save) and call gc.compile again")

    def __copy__(self):  # a shallow copy shares the compiled code, as it always did
        new = object.__new__(Function)
        new.__dict__.update(self.__dict__)
        return new

    def __repr__(self):
        return (f"<graphc.Function backend={self.backend} inputs={[p.name for p in self.inputs]}"
                f" outputs={len(self.outputs)} updates={len(self.program.updates)}>")


def _update_fits(value_shape, param_shape) -> bool:
    """Whether a new value of ``value_shape`` broadcasts to exactly ``param_shape`` (free dims,
    None, are checked again at call time)."""
    return len(value_shape) <= len(param_shape) and all(
        v is None or v == 1 or v == p for v, p in zip(value_shape[::-1], param_shape[::-1]))


def _check_updates(updates) -> list[tuple[Tensor, Tensor]]:
    from .ops.core import as_tensor
    out = []
    if callable(getattr(updates, "updates", None)):  # an optimizer itself (not iterable)
        raise TypeError(f"updates must be a list of (parameter, new_value) pairs, got the "
                        f"optimizer {type(updates).__name__}: pass opt.updates(params, grads)")
    for item in updates or []:
        try:
            param, value = item
        except (TypeError, ValueError):
            raise TypeError("updates must be a list of (parameter, new_value) pairs") from None
        if not isinstance(param, Tensor) or param.op != "parameter":
            raise TypeError(f"update target {param!r} is not a parameter")
        value = as_tensor(value, like=param)
        if not _update_fits(value.shape, param.shape):
            raise ShapeError(f"update of {param.name}: value shape {format_shape(value.shape)} "
                             f"does not fit parameter shape {format_shape(param.shape)}")
        if value.dtype != param.dtype:
            from .ops.elementwise import cast
            value = cast(value, param.dtype)
        if any(p.id == param.id for p, _ in out):
            raise ValueError(f"parameter {param.name} is updated twice")
        out.append((param, value))
    return out


def compile(inputs: Sequence[Tensor], outputs, updates=None, backend: str = "numpy") -> Function:
    """Compile ``outputs`` (a tensor or a list) as a function of the placeholders ``inputs``,
    applying ``updates`` (parameter, new value) after all outputs are computed.

    ``inputs``: the placeholders (a list, or one placeholder), fed positionally or by name.
    ``updates``: a list of ``(parameter, new_value_tensor)`` pairs, e.g.
    ``opt.updates(params, grads)``; every update reads the old values.  ``backend``:
    ``"numpy"`` (reference), ``"c"``, ``"cuda"`` or ``"opencl"``.

    Returns a callable ``Function``: one numpy array for one output tensor, else a list; it
    has ``.source`` (generated code, ``None`` on numpy) and ``.memory_report()``.

    Raises ``TypeError`` for an input that is not a placeholder, an output that is not a
    tensor or malformed ``updates``; ``ValueError`` for an unknown backend, duplicate input
    names or a placeholder the outputs need that is not in ``inputs``; ``gc.ShapeError`` for
    an update value whose shape does not fit its parameter; ``gc.BackendUnavailable`` when
    the backend cannot run here.  Calling the function with an array of the wrong shape or
    dtype raises ``ValueError`` naming the placeholder (nothing is updated)."""
    # one placeholder alone is taken as [placeholder], as one output tensor is for outputs
    # (bool() of a tensor, which `inputs or []` asked for, is an error)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs if inputs is not None else [])
    for p in inputs:
        if not isinstance(p, Tensor) or p.op != "placeholder":
            raise TypeError(f"compile: inputs must be placeholders, got {p!r}")
    names = [p.name for p in inputs]
    if len(set(names)) != len(names):
        raise ValueError(f"compile: input names must be unique, got {names}")
    single = isinstance(outputs, Tensor)
    outs = [outputs] if single else list(outputs)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"compile: outputs must be graphc Tensors, got {type(o).__name__}")
    explicit = _check_updates(updates)
    roots = outs + [v for _, v in explicit]
    # implicit updates (batch norm statistics, dropout counters) of every reachable node
    updated = {p.id for p, _ in explicit}
    order = toposort(roots)
    # checked and cast to the parameter's dtype like the explicit ones: batch_norm of float64
    # data computes float64 statistics for float32 running stats
    implicit = _check_updates([(p, v) for p, v in collect_effects(order) if p.id not in updated])
    all_updates = explicit + implicit
    given = {p.id for p in inputs}
    lacking = [n.name for n in toposort(roots + [v for _, v in implicit])
               if n.op == "placeholder" and n.id not in given]
    if lacking:
        same = sorted(set(lacking) & set(names))
        hint = (f" ({same} in inputs are other placeholders of the same name: pass the ones "
                f"the outputs are built from)" if same else "")
        raise ValueError(f"compile: the outputs need placeholder(s) {sorted(set(lacking))} "
                         f"that are not in inputs {names}{hint}")
    optimized = run_pipeline(outs + [v for _, v in all_updates])
    program = Program(inputs, optimized[:len(outs)],
                      [(p, v) for (p, _), v in zip(all_updates, optimized[len(outs):])])
    factory = _backend_factory(backend)
    return Function(inputs, outs, single, program, factory(program), backend)
