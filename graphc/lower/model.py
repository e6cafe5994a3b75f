"""What lowering produces, for every renderer: kernel records, where each buffer lives
(``Storage``: a slot passed on every call, or an offset in the arena), and the ``Lowered``
program.  Also the two text guards every name passes through before it reaches generated code
(``sanitize``, ``comment``)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..ir import Tensor

VIEW_OPS = {"reshape", "reshape_like", "expand_dims", "squeeze", "identity", "stop_gradient"}
ALIGN = 64
XENT_OPS = ("softmax_cross_entropy", "softmax_cross_entropy_grad")  # label-checking row kernels

@dataclass(frozen=True)
class Storage:
    where: str          # "slot" or "arena"
    index: int          # slot index, or byte offset in the arena
    nbytes: int


@dataclass
class Slot:
    kind: str           # "input", "param", "const", "output"
    node: Tensor


@dataclass
class Kernel:
    name: str
    kind: str           # "ew", "dense", "matmul", "reduce", "rowwise", "transpose", "random",
                        # "copy"
    node: Tensor        # the graph node computed (for copies: the source node)
    dst: Storage
    srcs: list          # Storage of each of node.inputs (None for shape-only inputs)
    attrs: dict = field(default_factory=dict)
    members: list = field(default_factory=list)  # Member updates computed alongside
                                                 # (ew, dense, reduce)
    group_max: Optional["GroupMax"] = None       # dense: a maxout of its output, computed too
    prologue: Optional["Prologue"] = None        # reduce: its input computed per element


@dataclass
class Member:
    """An elementwise node computed by its host kernel, element by element, as an extra output
    (see ``fused_plan``): an in-place update, or (``in_place`` False) the activation of a GEMM's
    output written to its own buffer."""
    node: Tensor
    dst: Storage
    srcs: list          # Storage of each of node.inputs
    in_place: bool = True


@dataclass
class GroupMax:
    """A maxout computed by a GEMM kernel from the rows of C it stores (see
    ``fold_group_max``): ``node`` is a ``max`` over the last axis of a (rows, ..., pieces) view
    of the GEMM's (rows, units * pieces) output, so out[i, u] = max_p C[i, u * pieces + p]."""
    node: Tensor
    dst: Storage
    pieces: int


@dataclass
class Prologue:
    """An elementwise node computed by the reduction that consumes it, at each element the
    reduction loads (see ``fold_ew_into_reduce``): its buffer is never written.  ``srcs``:
    the Storage of each of ``node``'s inputs."""
    node: Tensor
    srcs: list


@dataclass
class ReduceRead:
    """What a reduction kernel reads, for every renderer (``reduce_read``): its input's axes
    with size-1 ones dropped and neighbours of one kind merged where every operand allows it,
    as groups [is_reduced, size] (at least one); the operands (Tensor, Storage) with each
    one's element stride per group (0: broadcast along it); and the value of an element:
    ``expr`` of the arguments A[j] = operand j's element, computed in the elementwise kernels'
    type and stored as ``node``'s dtype (what a buffer would have held), or None for operand
    0 itself (no prologue)."""
    groups: list
    operands: list
    strides: list
    expr: object
    node: Tensor


@dataclass
class FusedPlan:
    """What a kernel with members computes per element, for every renderer: the distinct
    operands read, the outputs written (the host first), and per output its expression with
    what each argument A[j] is: ("in", operand index), ("val", index of an earlier output,
    read from the value computed in the same iteration) or ("acc", 0) (a GEMM's accumulator).
    Renderers load everything before they store anything, so in-place outputs never feed
    another output's loads in the same iteration."""
    operands: list      # (Tensor, Storage)
    outputs: list       # (Tensor, Storage)
    exprs: list         # (sympy expression, [(kind, index) per argument])


@dataclass
class XentParts:
    """What a cross-entropy row kernel computes (both renderers): the losses (``loss``, into the
    kernel's dst), the gradient (``grad`` from row weights at ``g_src`` into ``grad_dst``), or
    both when the gradient is the loss kernel's member."""
    loss: Optional[Tensor]
    grad: Optional[Tensor]
    g_src: Optional[Storage]
    grad_dst: Optional[Storage]


@dataclass
class Lowered:
    inputs: list[Tensor]            # concrete placeholders, call order
    slots: list[Slot]
    kernels: list[Kernel]
    arena_bytes: int
    outputs: list[tuple[int, Tensor]]          # (slot, node) per program output
    buffers: dict[str, int]                    # planned intermediate name -> bytes
    in_place: list[str]                        # parameters updated in place
    label_checks: list[tuple[int, int]] = field(default_factory=list)  # (input slot, classes)
    # (kernel name, classes, input slot of fed labels or None) of every cross-entropy kernel: on
    # the C backend it checks its labels itself and ends the step with status 1 + index
    kernel_label_checks: list[tuple[str, int, Optional[int]]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # node id -> deterministic display name
    kernel_of: dict[int, str] = field(default_factory=dict)  # program node id -> kernel name
    # (program size_of node, input shape) of training batch norms with a fed flag that count
    # one sample at these shapes: an error in the calls feeding training=True
    one_sample_checks: list = field(default_factory=list)

    def name(self, node: Tensor) -> str:
        return self.names.get(node.id, node.name)

    @property
    def peak_bytes(self) -> int:
        return self.arena_bytes + sum(nbytes(n) for _, n in self.outputs)


def view_base(t: Tensor) -> Tensor:
    """The node whose buffer ``t`` reads: views (reshape & co.) alias their input."""
    while t.op in VIEW_OPS:
        t = t.inputs[0]
    return t


def numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def nbytes(t: Tensor) -> int:
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize if t.shape \
        else np.dtype(t.dtype).itemsize

def sanitize(text: str, limit: int = 40) -> str:
    """An identifier fragment from arbitrary text (node names and labels reach generated code
    only through here or inside comments made safe by ``comment``)."""
    out = re.sub(r"[^0-9A-Za-z_]+", "_", text)[:limit].strip("_")
    return out or "x"


def comment(text: str) -> str:
    """Text safe inside a C block comment (no comment terminators, no line breaks)."""
    text = re.sub(r"[^\x20-\x7e]", "?", text).replace("\\", "/")
    return text.replace("*/", "* /").replace("/*", "/ *")


def label_status(low: Lowered, k: Kernel) -> int:
    """The step's return status when kernel ``k`` finds invalid labels (0: it checks none)."""
    names = [check[0] for check in low.kernel_label_checks]
    return names.index(k.name) + 1 if k.name in names else 0


def label_error(low: Lowered, status: int, feeds: list) -> ValueError:
    """The error for a step that a cross-entropy kernel stopped with ``status`` (see
    ``label_status``): it names the fed input and the range of its labels when they were fed."""
    name, classes, slot = low.kernel_label_checks[status - 1]
    if slot is not None:
        labels = feeds[slot]
        return ValueError(f"cross_entropy: labels must be in [0, {classes}), got range "
                          f"[{labels.min()}, {labels.max()}] in input "
                          f"{low.slots[slot].node.name!r}; nothing was updated")
    return ValueError(f"cross_entropy: labels must be in [0, {classes}); labels computed in the "
                      f"graph are out of range ({name}); nothing was updated")
