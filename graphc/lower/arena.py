"""The arena plan: every intermediate buffer gets an offset in one block of memory, reused once
the buffer's last reader has run (best fit among the free blocks, ``ALIGN``-byte granules)."""
from __future__ import annotations

from ..ir import Tensor
from .model import ALIGN, Storage, nbytes, view_base


def plan_arena(computed: list[Tensor], storage: dict, outs: list, updates: list, folds,
               direct_out: dict, in_place: dict, names: dict) -> tuple[int, dict[str, int]]:
    """Give each node of ``computed`` (kernel order) and each member written to a buffer of its
    own a ``Storage`` in ``storage``: its output slot (``direct_out``), its parameter
    (``in_place``) or an arena offset.  Returns (arena bytes, planned buffer name -> bytes)."""
    end = len(computed)
    last_use: dict[int, int] = {}
    for s, n in enumerate(computed):
        readers = ([n] + folds.members_of.get(n.id, [])
                   + folds.prologue_group.get(n.id, [])[:1])
        for i in [i for x in readers for i in x.inputs]:
            last_use[view_base(i).id] = max(last_use.get(view_base(i).id, -1), s)
    for o in outs:
        last_use[view_base(o).id] = end          # copied into its output slot at the end
    for p, v in updates:
        last_use[view_base(v).id] = end          # copied into the parameter at the end
    free: list[tuple[int, int]] = []        # (offset, size) blocks available
    live: list[tuple[int, int, int]] = []   # (last step, offset, size)
    arena = 0
    buffers: dict[str, int] = {}

    def place(n: Tensor, s: int) -> None:
        if n.id in direct_out:
            storage[n.id] = Storage("slot", direct_out[n.id], nbytes(n))
            return
        if n.id in in_place:
            storage[n.id] = storage[in_place[n.id].id]
            return
        nonlocal arena
        size = -(-max(nbytes(n), 1) // ALIGN) * ALIGN
        fit = min((b for b in free if b[1] >= size), key=lambda b: b[1], default=None)
        if fit is not None:
            free.remove(fit)
            offset = fit[0]
            if fit[1] > size:
                free.append((fit[0] + size, fit[1] - size))
        else:
            offset, arena = arena, arena + size
        storage[n.id] = Storage("arena", offset, nbytes(n))
        buffers[names[n.id]] = nbytes(n)
        live.append((last_use.get(n.id, s), offset, size))

    for s, n in enumerate(computed):
        for item in [x for x in live if x[0] < s]:
            live.remove(item)
            free.append((item[1], item[2]))
        place(n, s)
        for m in folds.members_of.get(n.id, []):
            if m.id in folds.own_out_of or m.id in folds.max_of:
                place(m, s)  # written by n's kernel at step s, read later
    return arena, buffers
