"""Index arithmetic shared by the renderers: broadcast strides, merged loop axes, how a
reduction walks its input (``merge_groups``) and how a transpose moves its elements
(``transpose_plan``)."""
from __future__ import annotations

from dataclasses import dataclass

def strides_for(shape: tuple, out_shape: tuple) -> list[int]:
    """Element strides of a tensor of ``shape`` indexed by an output index of ``out_shape``
    under numpy broadcasting (0 along broadcast axes)."""
    nd = len(out_shape)
    shape = (1,) * (nd - len(shape)) + tuple(shape)
    strides, acc = [0] * nd, 1
    for d in range(nd - 1, -1, -1):
        strides[d] = 0 if shape[d] == 1 and out_shape[d] != 1 else acc
        acc *= shape[d]
    return strides


def collapse(out_shape: tuple, operand_strides: list[list[int]]):
    """Merge adjacent axes that every operand walks contiguously (fewer, longer loops)."""
    dims = list(out_shape)
    strides = [list(s) for s in operand_strides]
    d = len(dims) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * dims[d + 1] for s in strides):
            dims[d] *= dims[d + 1]
            for s in strides:
                s[d] = s[d + 1]
                del s[d + 1]
            del dims[d + 1]
        d -= 1
    return dims, strides


def merge_groups(shape: tuple, axes, operand_strides: list[list[int]]):
    """The axes of a reduction's input ``shape`` as groups [is_reduced, size] (renderers loop
    over these): neighbours of the same kind merge when every operand walks the two
    contiguously (a per-row statistic (N, 1) broadcast over (N, C) has stride 0 along C, 1
    along N: they stay two loops).  Size-1 axes index nothing and are dropped; at least one
    group.  Returns (groups, per operand the stride of each group's innermost axis)."""
    axes = set(axes)
    keep = [d for d, size in enumerate(shape) if size != 1]
    groups: list[list] = []
    strides: list[list[int]] = [[] for _ in operand_strides]
    for d in keep:
        red = d in axes
        if groups and groups[-1][0] == red and all(
                s[d] * shape[d] == g[-1] for s, g in zip(operand_strides, strides)):
            groups[-1][1] *= shape[d]
            for s, g in zip(operand_strides, strides):
                g[-1] = s[d]
        else:
            groups.append([red, shape[d]])
            for s, g in zip(operand_strides, strides):
                g.append(s[d])
    if not groups:
        return [[False, 1]], [[0] for _ in operand_strides]
    return groups, strides


TILE_BYTES = 64   # bytes a transpose tile row spans on the C backend (one cache line)
ROW_BYTES = 64    # contiguous runs at least this long are copied as rows, not tiled
BLOCK_BYTES = 32768  # a tiled transpose whose (b, a) block spans at most this much of
                     # the source and of the destination is one tile (plain loops)


@dataclass(frozen=True)
class TransposePlan:
    """How a transpose moves its elements, shared by the C and GPU renderers.

    ``dims`` / ``src`` / ``dst``: the loop axes (in output order, size-1 axes dropped, axes
    contiguous on both sides merged) and the element strides of each in the source and the
    (contiguous) destination.  ``run``: elements contiguous on both sides that each index of
    ``dims`` copies (the kept last axis, else 1).  Kinds:

    * ``copy``: the permutation is the identity once merged (``dims`` empty): one block copy.
    * ``rows``: the last axis stays, its runs are at least ``ROW_BYTES``: copy run after run.
    * ``tiled``: axis ``a`` (the last of ``dims``) is contiguous in the destination and axis
      ``b`` in the source (stride ``run``): walked in square tiles so that both the reads and
      the writes of a tile stay within a few cache lines (a plain loop strides one side by a
      whole row per element)."""
    kind: str
    dims: tuple
    src: tuple
    dst: tuple
    run: int
    a: int = -1
    b: int = -1

    @property
    def outer(self) -> list[int]:
        """Indices of the axes that are neither tiled axis (all of them for ``rows``)."""
        return [d for d in range(len(self.dims)) if d not in (self.a, self.b)]


def transpose_plan(in_shape: tuple, perm: tuple, itemsize: int) -> TransposePlan:
    """The ``TransposePlan`` of ``transpose(x, perm)`` for a contiguous x of ``in_shape``."""
    out_shape = tuple(in_shape[p] for p in perm)
    if 0 in out_shape:
        return TransposePlan("copy", (), (), (), 0)
    in_st = strides_for(in_shape, in_shape)
    keep = [d for d, n in enumerate(out_shape) if n != 1]  # size-1 axes never move data
    out_st = strides_for(out_shape, out_shape)
    dims, (src, dst) = collapse(tuple(out_shape[d] for d in keep),
                                [[in_st[perm[d]] for d in keep], [out_st[d] for d in keep]])
    if len(dims) <= 1:  # identity after merging: src and dst walk the same order
        return TransposePlan("copy", (), (), (), int(dims[0]) if dims else 1)
    run = 1
    if src[-1] == 1:  # the last axis stays: both sides have runs of dims[-1]
        run = dims.pop()
        src.pop()
        dst.pop()
        if len(dims) == 1 or run * itemsize >= ROW_BYTES:
            return TransposePlan("rows", tuple(dims), tuple(src), tuple(dst), run)
    # the source is dense, so the smallest stride left is one run; merging made it not the
    # destination's contiguous (last) axis
    b = src.index(run)
    assert b != len(dims) - 1 and dst[-1] == run, (in_shape, perm, dims, src, dst)
    return TransposePlan("tiled", tuple(dims), tuple(src), tuple(dst), run, len(dims) - 1, b)
