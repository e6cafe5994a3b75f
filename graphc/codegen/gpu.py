"""GPURenderer: a ``Lowered`` program -> one kernel text (both GPU dialects) + a launch plan.

The text is written only with the ``kernels/gc_dialect.h`` macros (``GC_KERNEL``, ``GC_GLOBAL``,
``GC_LOCAL``, ``GC_BARRIER`` ...), so the CUDA runtime compiles it after the CUDA prelude and the
OpenCL runtime after the OpenCL one.  It starts with ``#include "gc_math.h"`` and each GEMM kernel
``#include``s the ``gc_gpu_gemm.h`` template; ``gpu_common.expand_includes`` pastes those headers
in before compiling (NVRTC and OpenCL then need no include paths).

Buffers: every operand is passed as (base pointer, ``gc_i64`` element offset) -- slots are
buffers of their own (offset 0), intermediates share one arena buffer.  OpenCL sub-buffers would
need device-specific offset alignment; a base plus an offset works everywhere.

Kernels mirror ``codegen/c.py`` kind by kind (same index math, same semantics):

* ``ew``, ``copy``, ``random``: one thread per output element, grid-stride loop; ``transpose``
  the same when the last axis stays, else 32 x 32 tiles through local memory.
* ``dense``: the register-blocked GEMM template with the fused epilogue as an inline function of
  (acc, i, j) that reads the broadcast extras; ``matmul`` (batched): the same template with the
  batch index as the third grid dimension.  Row tiles are grid y, capped at CUDA's 65535
  (``gpu_common.gemm_launch_geometry``); the template loops over the rest, so any M is one
  launch.
* ``reduce`` and ``rowwise`` (softmax, log_softmax, softmax_cross_entropy): a work-group of
  ``LX x LY`` threads handles ``LX`` outputs (rows), ``LY`` threads per output striding over the
  reduced elements, then a local-memory tree reduction.  No warp intrinsics, no atomics.
  Updates folded into a reduction (a bias's, from its gradient's column sum) run in the one
  thread per output that holds the final value (``GPURenderer._reduce_finish``).  A reduction
  computing its input (``lower.Prologue``) evaluates the folded node's expression at every
  element it loads, as the C renderer does (``lower.reduce_read`` describes both).

Everything is deterministic: identical programs give identical text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import sympy as sp

from ..ir import Tensor
from ..lower import (FusedPlan, Kernel, Lowered, Storage, collapse, comment, fused_plan,
                     label_status, lower, plan_loop, reduce_read, strides_for, transpose_plan,
                     xent_parts)
from ..runtime.gpu_common import gemm_launch_geometry
from ..symbolic import A
from .c_types import compute_type, converts_only, math_dtype
from .cexpr import render_plan

GPU_TYPES = {"float32": "float", "float64": "double", "int64": "gc_i64", "int32": "gc_i32",
             "int16": "gc_i16", "int8": "gc_i8", "uint8": "gc_u8", "uint16": "gc_u16",
             "uint32": "gc_u32", "uint64": "gc_u64", "bool": "gc_u8"}

EW_THREADS = 256          # work-group size of elementwise-style kernels
MAX_GROUPS = 65535        # cap of grid-stride launches (and of CUDA's grid y/z extents)
RED_THREADS = 256         # work-group size of reductions / row kernels
TILE = 32                 # edge of a tiled transpose's tile (one warp's width)
TILE_THREADS = 256        # work-group size of a tiled transpose (32 x 8 threads)


def gtype(dtype: str) -> str:
    try:
        return GPU_TYPES[dtype]
    except KeyError:
        raise TypeError(f"the GPU backends do not support dtype {dtype}") from None


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


@dataclass(frozen=True)
class Arg:
    """One logical kernel argument of a launch.

    ``buf``: a buffer operand (``storage``; ``dtype`` its element type) -- passed as two kernel
    arguments, the base buffer and the element offset (``gc_i64``).  ``scratch``: the same for
    the program's scratch buffer (``GPURenderer.scratch_bytes``, offset 0; kernels run in order,
    so one scratch serves all).  ``status``: the same for the program's status word (an int32
    the cross-entropy kernels set to their ``label_status`` on invalid computed labels).  ``i32`` / ``i64`` / ``u64``: a scalar ``value``."""
    kind: str
    storage: Optional[Storage] = None
    dtype: Optional[str] = None
    value: int = 0

    def element_offset(self) -> int:
        """Offset in elements of this operand in its buffer (slots: 0)."""
        if self.storage is None or self.storage.where == "slot":
            return 0
        size = np.dtype(self.dtype).itemsize
        assert self.storage.index % size == 0, (self.storage, self.dtype)
        return self.storage.index // size

    def describe(self) -> str:
        """This argument for an error message: a buffer operand's element type and count and
        where it lives, a scalar's type and value."""
        if self.kind in ("i32", "i64", "u64"):
            return f"{self.kind} {self.value}"
        if self.storage is None:
            return f"{self.kind} {self.dtype}[]"
        st = self.storage
        place = f"slot {st.index}" if st.where == "slot" else f"arena byte {st.index}"
        return f"{self.dtype}[{st.nbytes // np.dtype(self.dtype).itemsize}] ({place})"


@dataclass
class Launch:
    """One kernel launch: ``groups`` work-groups (CUDA grid) of ``local`` threads (CUDA block);
    the OpenCL global size is ``groups * local`` per dimension."""
    function: str                  # kernel function name in the text
    kernel: str                    # the Lowered kernel it implements
    groups: tuple
    local: tuple
    args: list = field(default_factory=list)
    computes: str = ""             # the graph node (and its operands) it computes, for errors

    @property
    def empty(self) -> bool:
        return any(g == 0 for g in self.groups)


def buf(storage: Storage, dtype: str) -> Arg:
    return Arg("buf", storage, dtype)


def i32(v: int) -> Arg:
    """A 32-bit int argument (GEMM sizes and leading dimensions, flags): a size past 2**31 - 1
    is refused when the program is rendered, not by numpy when the launch is bound."""
    if not -2 ** 31 <= int(v) < 2 ** 31:
        raise NotImplementedError(f"the GPU backends pass GEMM sizes as 32-bit ints: {int(v)} "
                                  f"(a matrix dimension of 2**31 or more) is not supported")
    return Arg("i32", value=int(v))


def i64(v: int) -> Arg:
    return Arg("i64", value=int(v))


class GPURenderer:
    """Renders a Lowered program as GPU kernel text plus launches (see module docstring)."""

    def __init__(self, lowered: Lowered):
        self.lowered = lowered
        self.functions: list[str] = []
        self.launches: list[Launch] = []
        self.uses_double = False
        self.scratch_bytes = 0      # per-program scratch (split reductions' partials)
        # launches up to the last kernel that checks computed class labels: the host reads the
        # status word after them and runs the rest (every in-place update) only when it is 0
        self.status_launches = 0

    # -- helpers ----------------------------------------------------------------------------
    def _name(self, node: Tensor) -> str:
        """Deterministic display name (independent of global node ids) when lowering has one."""
        name_of = getattr(self.lowered, "name", None)
        return name_of(node) if callable(name_of) else node.name

    def _header(self, k: Kernel) -> str:
        n = k.node
        label = n.attrs.get("label", n.op)
        also = "".join(f"\n * and {'updates in place' if m.in_place else 'computes'}: node "
                       f"{comment(self._name(m.node))} = "
                       f"{comment(m.node.attrs.get('label', m.node.op))}" for m in k.members)
        if k.prologue is not None:
            e = k.prologue.node
            also += (f"\n * computing per element its input: node "
                     f"{comment(self._name(e))} = {comment(e.attrs.get('label', e.op))}, "
                     f"built at {comment(e.where)}")
        return (f"/* {k.name}: node {comment(self._name(n))} = {comment(label)} "
                f"{tuple(n.shape)} {n.dtype}, built at {comment(n.where)}{also} */")

    def _computes(self, k: Kernel) -> str:
        """What kernel ``k`` computes, for error messages: its node, op, shape and dtype and
        its operands' (``Launch.computes``)."""
        def one(t: Tensor) -> str:
            return f"{self._name(t)!r} {tuple(t.shape)} {t.dtype}"
        n = k.node
        ops = ", ".join(one(t) for t in n.inputs)
        return (f"node {one(n)} = {n.attrs.get('label', n.op)}({ops}), built at {n.where}")

    def _computed_labels(self, k: Kernel) -> bool:
        """Whether cross-entropy kernel ``k`` reads labels computed in the graph (not fed)."""
        return any(name == k.name and slot is None
                   for name, _, slot in self.lowered.kernel_label_checks)

    def _note_dtypes(self, *dtypes) -> None:
        if any(d == "float64" for d in dtypes):
            self.uses_double = True

    @staticmethod
    def _param(name: str, dtype: str, const: bool) -> str:
        c = "const " if const else ""
        return f"{c}GC_GLOBAL {gtype(dtype)}* {name}_, gc_i64 {name}_o"

    @staticmethod
    def _bind(name: str, dtype: str, const: bool) -> str:
        c = "const " if const else ""
        return f"{c}GC_GLOBAL {gtype(dtype)}* {name} = {name}_ + {name}_o;"

    def _emit(self, k: Kernel, params: list[str], binds: list[str], body: list[str],
              args: list[Arg], groups: tuple, local: tuple, wg: int,
              prelude: list[str] = (), name: Optional[str] = None) -> None:
        name = name or k.name
        lines = [self._header(k)] + list(prelude) + [
            f"GC_KERNEL GC_WG_SIZE({wg}) void {name}(" + ", ".join(params) + ")", "{"]
        lines += ["    " + b for b in binds]
        lines += ["    " + s for s in body]
        lines.append("}")
        self.functions.append("\n".join(lines))
        self.launches.append(Launch(name, k.name, tuple(groups), tuple(local), args,
                                    self._computes(k)))

    @staticmethod
    def _grid_1d(total: int, threads: int = EW_THREADS) -> tuple:
        return (min(-(-total // threads), MAX_GROUPS), 1, 1)

    @staticmethod
    def _wide(n: int) -> bool:
        """Whether index math over ``n`` elements needs 64 bits (32-bit division is several
        times cheaper on GPUs; the margin covers a grid-stride step past the end)."""
        return n + MAX_GROUPS * RED_THREADS >= 2 ** 31

    @staticmethod
    def _decompose(dims: list[int], var: str = "gi", prefix: str = "i",
                   wide: bool = True) -> list[str]:
        """Statements splitting the linear index ``var`` into per-dim indices i0..i{n-1}."""
        it, sfx = ("gc_i64", "L") if wide else ("int", "")
        if not dims:
            return []
        if len(dims) == 1:
            return [f"const {it} {prefix}0 = {var};"]
        out = [f"{it} {prefix}_r = {var};"]
        for d in range(len(dims) - 1, 0, -1):
            out.append(f"const {it} {prefix}{d} = {prefix}_r % {dims[d]}{sfx}; "
                       f"{prefix}_r /= {dims[d]}{sfx};")
        out.append(f"const {it} {prefix}0 = {prefix}_r;")
        return out

    @staticmethod
    def _index(strides, prefix: str = "i", wide: bool = True) -> str:
        sfx = "L" if wide else ""
        terms = [f"{prefix}{d}*{s}{sfx}" if s != 1 else f"{prefix}{d}"
                 for d, s in enumerate(strides) if s]
        return " + ".join(terms) or "0"

    def _map_kernel(self, k: Kernel, operands: list[tuple[str, str, Storage]],
                    out, dims: list[int], inner) -> None:
        """A grid-stride loop over the ``dims`` output index space (i0, i1, ...); ``inner(wide)``
        gives the loop body for 64-bit (wide) or 32-bit index math.  ``out``: the (name,
        dtype, storage) written, or a list of them."""
        total = int(np.prod(dims, dtype=np.int64)) if dims else 1
        params, binds, args = [], [], []
        for name, dtype, st in operands:
            params.append(self._param(name, dtype, True))
            binds.append(self._bind(name, dtype, True))
            args.append(buf(st, dtype))
        for name, dtype, st in (out if isinstance(out, list) else [out]):
            params.append(self._param(name, dtype, False))
            binds.append(self._bind(name, dtype, False))
            args.append(buf(st, dtype))
        wide = self._wide(total)
        it, sfx = ("gc_i64", "L") if wide else ("int", "")
        body = [f"for ({it} gi = ({it})GC_GLOBAL_ID(0); gi < {total}{sfx}; "
                f"gi += ({it})GC_GLOBAL_SIZE(0)) {{"]
        body += ["    " + s for s in self._decompose(dims, wide=wide) + inner(wide)]
        body.append("}")
        self._emit(k, params, binds, body, args, self._grid_1d(total), (EW_THREADS, 1, 1),
                   EW_THREADS)

    # -- elementwise --------------------------------------------------------------------------
    @staticmethod
    def _store(value: str, dtype: str) -> str:
        return f"({gtype(dtype)})({value})" if dtype != "bool" else f"(gc_u8)(({value}) != 0)"

    def render_ew(self, k: Kernel) -> None:
        plan = fused_plan(k)
        dims, in_strides, out_strides = plan_loop(plan)
        outputs = [n for n, _ in plan.outputs]
        # the C backend's rule: double if any operand is float64, float if any is a float,
        # else 64-bit integers (exact integer arithmetic)
        dtypes = [n.dtype for n in outputs] + [t.dtype for t, _ in plan.operands]
        mdt, ctype_ = compute_type(dtypes, converts_only(plan))
        mct = {"double": "double", "float": "float", "uint64_t": "gc_u64"}.get(ctype_, "gc_i64")
        self._note_dtypes(*dtypes, "float64" if mct == "double" else "float32")
        names = ["out"] if len(outputs) == 1 else [f"out{o}" for o in range(len(outputs))]

        def inner(wide):
            loads = [f"(({mct})in{j}[{self._index(st, wide=wide)}])"
                     for j, st in enumerate(in_strides)]
            stmts, values = render_plan(plan, loads, mdt, mct, self._store)
            return stmts + [f"{name}[{self._index(out_strides[o], wide=wide)}] = {values[o]};"
                            for o, name in enumerate(names)]
        self._map_kernel(k, [(f"in{j}", t.dtype, st) for j, (t, st) in enumerate(plan.operands)],
                         [(name, n.dtype, st) for name, (n, st) in zip(names, plan.outputs)],
                         dims, inner)

    # -- GEMM ---------------------------------------------------------------------------------
    def render_dense(self, k: Kernel) -> None:
        if k.group_max is not None:
            raise NotImplementedError(f"{k.name}: a maxout folded into a GEMM (lower with "
                                      f"lower_gpu for the GPU renderers)")
        node = k.node
        a, b = node.inputs[0], node.inputs[1]
        ta, tb = bool(node.attrs["trans_a"]), bool(node.attrs["trans_b"])
        m, n = node.shape
        kk = a.shape[0] if ta else a.shape[1]
        mdt = math_dtype(node.dtype)
        plan = fused_plan(k)
        operands = [t for t, _ in plan.operands]
        side = [t for t, _ in plan.outputs[1:]]
        self._note_dtypes(mdt, node.dtype, a.dtype, b.dtype, *[t.dtype for t in operands + side])
        mct = gtype(mdt)
        fn = k.name
        expr = node.attrs["expr"]
        prelude = [f"#define GC_GEMM_NAME {fn}", f"#define GC_GEMM_REAL {mct}",
                   "#define GC_GEMM_WITH_OFFSETS 1"]
        epi_lines = []
        if operands or side or sp.sympify(expr) != A[0]:
            def at(t: Tensor) -> str:
                st = strides_for(t.shape, (m, n))
                return " + ".join(f"(gc_i64)({v})*{s}L" for v, s in zip(("i", "j"), st) if s) \
                    or "0"
            loads, eparams, eargs = [], [], []
            for j, t in enumerate(operands):
                loads.append(f"(({mct})ep{j}[ep{j}_o + {at(t)}])")
                eparams.append(f"const GC_GLOBAL {gtype(t.dtype)}* ep{j}, gc_i64 ep{j}_o")
                eargs.append(f"ep{j}, ep{j}_o")
            for j, t in enumerate(side):  # members' outputs: written by the epilogue
                eparams.append(f"GC_GLOBAL {gtype(t.dtype)}* up{j}, gc_i64 up{j}_o")
                eargs.append(f"up{j}, up{j}_o")
            # every load first, then the members' stores; r0 is what the GEMM stores
            stmts, values = render_plan(plan, loads, mdt, mct, self._store, acc="acc")
            tail = [f"up{j}[up{j}_o + {at(t)}] = {values[j + 1]};"
                    for j, t in enumerate(side)] + ["return r0;"]
            sig = ", ".join([f"{mct} acc", "int i", "int j"] + eparams)
            epi_lines = [f"GC_INLINE {mct} {fn}_epilogue({sig})", "{"] + \
                ["    " + s for s in stmts + tail] + ["}"]
            call = ", ".join(["(acc)", "(i)", "(j)"] + eargs)
            if eparams:
                prelude.append("#define GC_GEMM_EXTRA_PARAMS , " + ", ".join(eparams))
            prelude.append(f"#define GC_GEMM_EPILOGUE(acc, i, j) {fn}_epilogue({call})")
        lda = m if ta else kk
        ldb = kk if tb else n
        self.functions.append("\n".join(
            [self._header(k)] + epi_lines + prelude + ['#include "gc_gpu_gemm.h"']))
        gx, gy, _ = gemm_launch_geometry(m, n).grid
        args = [i32(m), i32(n), i32(kk), buf(k.srcs[0], a.dtype), i32(lda), i32(ta),
                buf(k.srcs[1], b.dtype), i32(ldb), i32(tb), buf(k.dst, node.dtype), i32(n),
                i32(0)]
        args += [buf(st, t.dtype) for t, st in plan.operands]
        args += [buf(st, t.dtype) for t, st in plan.outputs[1:]]
        self.launches.append(Launch(fn, k.name, (gx, gy, 1), (256, 1, 1), args,
                                    self._computes(k)))

    def render_matmul(self, k: Kernel) -> None:
        """Batched matmul (rank > 2): the batch index is the third grid dimension; a ``bmm``
        reads transposed operands through the GEMM's trans flags."""
        node = k.node
        a, b = node.inputs
        batch = tuple(node.shape[:-2])
        m, n = node.shape[-2:]
        ta, tb = bool(node.attrs.get("trans_a")), bool(node.attrs.get("trans_b"))
        kk = a.shape[-2] if ta else a.shape[-1]
        mdt = math_dtype(node.dtype)
        self._note_dtypes(mdt, node.dtype)
        mct = gtype(mdt)
        fn = k.name
        sa = strides_for(a.shape[:-2], batch)
        sb = strides_for(b.shape[:-2], batch)
        sc = strides_for(batch, batch)
        nb = _numel(batch)
        dec = self._decompose(list(batch), "b", "bi")

        def off(strides, block):
            return " + ".join(f"bi{d}*{s * block}L" for d, s in enumerate(strides) if s) or "0"

        helper = [f"GC_INLINE void {fn}_batch(gc_i64 b, gc_i64* oa, gc_i64* ob, gc_i64* oc)",
                  "{"] + ["    " + s for s in dec] + [
            f"    *oa = {off(sa, m * kk)};", f"    *ob = {off(sb, kk * n)};",
            f"    *oc = {off(sc, m * n)};", "}"]
        prelude = [f"#define GC_GEMM_NAME {fn}", f"#define GC_GEMM_REAL {mct}",
                   "#define GC_GEMM_WITH_OFFSETS 1",
                   "#define GC_GEMM_EXTRA_PARAMS , int gc_batch0",
                   f"#define GC_GEMM_BATCH(b) {{ gc_i64 oa_, ob_, oc_; {fn}_batch((b), &oa_, "
                   f"&ob_, &oc_); A += oa_; B += ob_; C += oc_; }}"]
        self.functions.append("\n".join([self._header(k)] + helper + prelude
                                        + ['#include "gc_gpu_gemm.h"']))
        gx, gy, _ = gemm_launch_geometry(m, n).grid
        base = [i32(m), i32(n), i32(kk), buf(k.srcs[0], a.dtype), i32(m if ta else kk), i32(ta),
                buf(k.srcs[1], b.dtype), i32(kk if tb else n), i32(tb), buf(k.dst, node.dtype),
                i32(n), i32(0)]
        for b0 in range(0, nb, MAX_GROUPS):
            self.launches.append(Launch(fn, k.name, (gx, gy, min(MAX_GROUPS, nb - b0)),
                                        (256, 1, 1), base + [i32(b0)], self._computes(k)))

    # -- reductions ---------------------------------------------------------------------------
    def _segmented(self, k: Kernel, nout: int, count: int, row_mode: bool, acc_t: str,
                   params: list[str], binds: list[str], args: list[Arg], per_out: list[str],
                   phases: list[tuple], finish_all: list[str], finish_one: list[str],
                   wide: bool = True, name: Optional[str] = None) -> None:
        """A reduction-style kernel over ``nout`` outputs of ``count`` elements each.

        Work-groups of LX x LY threads: LX outputs per group, LY threads per output striding
        over the elements, then a tree reduction in local memory (barriers only, so it is
        correct on any device).  ``row_mode``: the reduced elements are contiguous, so
        consecutive threads walk one output; else consecutive threads take consecutive outputs
        (a column sum reads coalesced rows).

        ``per_out``: statements for output ``o`` (``ok`` says whether o is valid);
        ``phases``: (init, load statements defining ``v`` from element ``r``, combine of ``a``
        and ``v``, result variable, statements after the result) reduced one after the other;
        ``finish_all``: statements run by every thread of a valid output;
        ``finish_one``: statements run by its first thread; ``wide``: 64-bit index math."""
        it, sfx = ("gc_i64", "L") if wide else ("int", "")
        lx_n, ly_n = self._red_geometry(nout, count, row_mode)
        if row_mode:
            lx, ly = f"tid / {ly_n}", f"tid % {ly_n}"

            def sh(x, y):
                return f"sh[({x}) * {ly_n} + ({y})]"
        else:
            lx, ly = f"tid % {lx_n}", f"tid / {lx_n}"

            def sh(x, y):
                return f"sh[({y}) * {lx_n} + ({x})]"
        nt = lx_n * ly_n
        ntiles = -(-nout // lx_n)
        # (no local array when one thread per output does the whole reduction: NVRTC warns
        # about an unused one, and a clean log lets tests treat any warning as a finding)
        body = [f"GC_LOCAL {acc_t} sh[{nt}];"] if ly_n > 1 else []
        body += ["const int tid = GC_LOCAL_ID(0);",
                f"const int lx = {lx};", f"const int ly = {ly};",
                f"const int nly = {ly_n};",
                "(void)lx; (void)nly;",
                "/* uniform loop over output tiles: every thread reaches every barrier */",
                f"for ({it} tile = GC_GROUP_ID(0); tile < {ntiles}{sfx}; "
                f"tile += GC_NUM_GROUPS(0)) {{",
                f"    const {it} o = tile * {lx_n} + lx;",
                f"    const int ok = o < {nout}{sfx};"]
        body += ["    " + s for s in per_out]
        for init, load, combine, result, after in phases:
            body += ["    {", f"        {acc_t} a = {init};",
                     f"        if (ok) for ({it} r = ly; r < {count}{sfx}; r += {ly_n}) {{"]
            body += ["            " + s for s in load]
            body += [f"            a = {combine};", "        }"]
            if ly_n > 1:
                body += [f"        {sh('lx', 'ly')} = a;", "        GC_BARRIER();"]
                s = ly_n // 2
                while s >= 1:
                    body += [f"        if (ly < {s}) {{ const {acc_t} v = {sh('lx', f'ly + {s}')};"
                             f" a = {sh('lx', 'ly')}; {sh('lx', 'ly')} = {combine}; }}",
                             "        GC_BARRIER();"]
                    s //= 2
                body += [f"        {result} = {sh('lx', '0')};", "        GC_BARRIER();"]
            else:
                body.append(f"        {result} = a;")
            body.append("    }")
            body += ["    " + s for s in after]
        if finish_all:
            body.append("    if (ok) {")
            body += ["        " + s for s in finish_all]
            body.append("    }")
        if finish_one:
            body.append("    if (ok && ly == 0) {")
            body += ["        " + s for s in finish_one]
            body.append("    }")
        body.append("}")
        groups = (min(ntiles, MAX_GROUPS) if nout > 0 else 0, 1, 1)
        self._emit(k, params, binds, body, args, groups, (nt, 1, 1), nt, name=name)

    @staticmethod
    def _red_geometry(nout: int, count: int, row_mode: bool) -> tuple[int, int]:
        """(LX, LY): outputs per work-group and threads per output (powers of two, LX*LY <=
        256).  Column mode takes 32 consecutive outputs per group (coalesced rows), fewer (down
        to 8, one 32-byte sector) when that leaves the device with too few groups."""
        if row_mode:
            ly_n = min(RED_THREADS, _pow2_at_least(max(count, 1)))
            return max(1, min(RED_THREADS // ly_n, _pow2_at_least(max(nout, 1)))), ly_n
        lx_n = min(32, _pow2_at_least(max(nout, 1)))
        while lx_n > 8 and -(-nout // lx_n) < 256 and count > 256:
            lx_n //= 2
        return lx_n, max(1, min(RED_THREADS // lx_n, _pow2_at_least(max(count, 1))))

    def _reduce_finish(self, k: Kernel, final: str, params: list[str], binds: list[str],
                       args: list[Arg]) -> list[str]:
        """Statements run once per output ``o`` of a reduction, by the one thread holding its
        final value ``final`` (``_segmented``'s ``finish_one``: ly == 0 after the tree step, or
        the final pass of a split reduction): the store of the output, and when updates are
        folded into the reduction (``lower.FOLD_INTO_REDUCE``: a bias and its optimizer state
        updated from its gradient's column sum) every member's value too, as ``codegen/c.py``'s
        ``_reduce_members`` does in its final loop.  Members read only operands of the
        output's shape (at ``o``) or of one element, and the lowering guarantees that no
        parameter written here is read at another index by the kernel, so the single thread
        per output reads the old values and nothing else races with its stores.  Appends the
        members' operands and outputs to ``params`` / ``binds`` / ``args``."""
        node = k.node
        if not k.members:
            return [f"out[o] = ({gtype(node.dtype)})({final});"]
        plan = fused_plan(k)
        # the elementwise kernels' rule (render_ew): double if any operand or output is
        # float64, float if any is a float, else 64-bit integers
        dtypes = [n.dtype for n, _ in plan.outputs] + [t.dtype for t, _ in plan.operands]
        mdt, ctype_ = compute_type(dtypes)
        mct = {"double": "double", "float": "float", "uint64_t": "gc_u64"}.get(ctype_, "gc_i64")
        self._note_dtypes(*dtypes, "float64" if mct == "double" else "float32")
        for j, (t, st) in enumerate(plan.operands):
            params.append(self._param(f"in{j}", t.dtype, True))
            binds.append(self._bind(f"in{j}", t.dtype, True))
            args.append(buf(st, t.dtype))
        names = ["out"] + [f"up{j}" for j in range(len(plan.outputs) - 1)]
        for name, (n, st) in zip(names[1:], plan.outputs[1:]):
            params.append(self._param(name, n.dtype, False))
            binds.append(self._bind(name, n.dtype, False))
            args.append(buf(st, n.dtype))
        loads = [f"(({mct})in{j}[{'o' if _numel(t.shape) > 1 else '0'}])"
                 for j, (t, _) in enumerate(plan.operands)]
        # every load before any store (render_plan): p, m, v are read before they are written
        stmts, values = render_plan(plan, loads, mdt, mct, self._store,
                                    acc=f"(({mct})({final}))")
        return stmts + [f"{name}[o] = {values[i]};" for i, name in enumerate(names)]

    def _reduce_element(self, rd, acc_t: str, ptrs: list[str], bases: list[str], offset):
        """A function of the reduced index variable giving (statements, value as the
        accumulator type ``acc_t``) of that element: the input's element, or the prologue's
        expression computed as an elementwise kernel computes it and converted to the folded
        node's dtype first (what its buffer held).  ``offset(j, var)``: operand j's offset
        along the reduced groups."""
        if rd.expr is None:
            return lambda var: ([], f"({acc_t}){ptrs[0]}[{bases[0]} + {offset(0, var)}]")
        dtypes = [rd.node.dtype] + [t.dtype for t, _ in rd.operands]
        mdt, ctype_ = compute_type(dtypes)
        mct = {"double": "double", "float": "float", "uint64_t": "gc_u64"}.get(ctype_, "gc_i64")
        self._note_dtypes(*dtypes, "float64" if mct == "double" else "float32")
        plan = FusedPlan(rd.operands, [(rd.node, None)],
                         [(rd.expr, [("in", j) for j in range(len(rd.operands))])])

        def element(var: str):
            loads = [f"(({mct}){p}[{b} + {offset(j, var)}])"
                     for j, (p, b) in enumerate(zip(ptrs, bases))]
            stmts, values = render_plan(plan, loads, mdt, mct, self._store, local="pe")
            return stmts, f"({acc_t})({values[0]})"
        return element

    def render_reduce(self, k: Kernel) -> None:
        node = k.node
        x = node.inputs[0]
        op = node.op
        shape = tuple(x.shape)
        # merged axes and what is read per element: the input buffer, or the operands of an
        # elementwise prologue with their strides per group (lower.reduce_read, as C's)
        rd = reduce_read(k)
        groups = rd.groups
        # integers never go through float (exact only up to 2**24): integer sums accumulate in
        # gc_u64 (wrapping like numpy's 64-bit sum), integer max compares in the input type;
        # mean/logsumexp of integers stay in float (double may be missing on the device)
        int_max = op == "max" and np.dtype(x.dtype).kind in "iub"
        if int_max:
            acc_t = gtype(x.dtype)
        elif op == "sum" and np.dtype(node.dtype).kind in "iub":
            acc_t = "gc_u64"
        else:
            acc_t = gtype(math_dtype(node.dtype))
        self._note_dtypes(node.dtype, x.dtype, "float64" if acc_t == "double" else "float32")
        nout = _numel(node.shape)
        count = _numel(shape) // nout if nout else 0
        wide = self._wide(_numel(shape))
        it, sfx = ("gc_i64", "L") if wide else ("int", "")
        st = rd.strides  # st[j][g]: operand j's element stride along group g
        # index strides of kept groups in the output index o, of reduced groups in r
        sub_st = [0] * len(groups)
        totals = {True: 1, False: 1}
        for gi in range(len(groups) - 1, -1, -1):
            red, size = groups[gi]
            sub_st[gi] = totals[red]
            totals[red] *= size

        def offset(var: str, which: bool, j: int = 0) -> str:
            terms = []
            for gi, (red, size) in enumerate(groups):
                if red != which or size == 1 or not st[j][gi]:
                    continue
                q = f"({var} / {sub_st[gi]}{sfx})" if sub_st[gi] != 1 else var
                if sub_st[gi] * size != totals[red]:
                    q = f"({q} % {size}{sfx})"
                terms.append(f"{q}*{st[j][gi]}{sfx}" if st[j][gi] != 1 else q)
            return " + ".join(terms) or "0"

        f = "f" if acc_t == "float" else ""
        is_int = acc_t not in ("float", "double")
        folded = rd.expr is not None
        ptrs = [f"p{j}" for j in range(len(rd.operands))] if folded else ["x"]
        bases = [f"base{j}" for j in range(len(rd.operands))] if folded else ["base"]
        element = self._reduce_element(rd, acc_t, ptrs, bases,
                                       lambda j, var: offset(var, True, j))

        def inputs(o: str) -> tuple[list, list, list, list]:
            """(params, binds, args, per-output base offsets at output index ``o``)."""
            ps = [self._param(pt, t.dtype, True) for pt, (t, _) in zip(ptrs, rd.operands)]
            bs = [self._bind(pt, t.dtype, True) for pt, (t, _) in zip(ptrs, rd.operands)]
            av = [buf(sj, t.dtype) for t, sj in rd.operands]
            per = [f"const {it} {b} = ok ? {offset(o, False, j)} : 0;"
                   for j, b in enumerate(bases)]
            return ps, bs, av, per

        params, binds, args, per_out = inputs("o")
        params.append(self._param("out", node.dtype, False))
        binds.append(self._bind("out", node.dtype, False))
        args.append(buf(k.dst, node.dtype))
        row_mode = bool(groups[-1][0])
        if op == "logsumexp":
            per_out.append(f"{acc_t} m, s;")
            pre, el = element("r")
            phases = [("-INFINITY", pre + [f"const {acc_t} v = {el};"], f"gc_max2{f}(a, v)", "m",
                       [f"const {acc_t} mm = gc_isfinite(m) ? m : (m != m ? m : ({acc_t})0);"]),
                      ("0", pre + [f"const {acc_t} v = gc_exp{f}({el} - mm);"], "a + v", "s",
                       [])]
            finish = self._reduce_finish(k, f"gc_log{f}(s) + mm", params, binds, args)
        else:
            init = {"sum": "0", "mean": "0", "max": "-INFINITY"}[op]
            combine = "a + v"
            if op == "max":
                lo = int(np.iinfo(np.dtype(x.dtype)).min) if int_max and x.dtype != "bool" else 0
                # (lo + 1) - 1: INT64_MIN written as one literal would overflow
                init = (f"(({acc_t})({lo + 1}L - 1))" if lo else "0") if is_int else init
                combine = "(a > v ? a : v)" if is_int else f"gc_max2{f}(a, v)"
            scale = f" / ({acc_t}){count}" if op == "mean" else ""
            lx_n, _ = self._red_geometry(nout, count, row_mode)
            n_groups = -(-nout // lx_n) if nout else 0
            if count >= 8192 and 0 < n_groups < 128:
                # few long reductions: split each over S work-groups (partials in scratch),
                # then reduce the S partials -- keeps a whole GPU busy without atomics
                splits = min(-(-count // 2048), max(2, 512 // n_groups))
                chunk = -(-count // splits)
                acc_dtype = {"float": "float32", "double": "float64", "gc_u64": "uint64"}.get(
                    acc_t, x.dtype)  # an integer max accumulates in its input dtype
                self.scratch_bytes = max(self.scratch_bytes,
                                         nout * splits * np.dtype(acc_dtype).itemsize)
                p1, b1, a1, base1 = inputs("oo")
                p1.append(self._param("part", acc_dtype, False))
                b1.append(self._bind("part", acc_dtype, False))
                a1.append(Arg("scratch", dtype=acc_dtype))
                per1 = [f"const {it} so = o / {nout}{sfx};",
                        f"const {it} oo = o - so * {nout}{sfx};", "(void)oo;"] + base1 + \
                    [f"{acc_t} res;"]
                pre, el = element("rr")
                load1 = [f"const {it} rr = so * {chunk}{sfx} + r;"]
                if pre:  # the prologue only for elements in range
                    load1 += [f"{acc_t} v = {init};", f"if (rr < {count}{sfx}) {{"]
                    load1 += ["    " + x_ for x_ in pre] + [f"    v = {el};", "}"]
                else:
                    load1.append(f"const {acc_t} v = rr < {count}{sfx} ? {el} : {init};")
                self._segmented(k, nout * splits, chunk, row_mode, acc_t, p1, b1, a1, per1,
                                [(init, load1, combine, "res", [])], [], ["part[o] = res;"],
                                wide, name=f"{k.name}_part")
                w2 = self._wide(nout * splits)
                s2 = "L" if w2 else ""
                p2 = [self._param("part", acc_dtype, True), self._param("out", node.dtype, False)]
                b2 = [self._bind("part", acc_dtype, True), self._bind("out", node.dtype, False)]
                a2 = [Arg("scratch", dtype=acc_dtype), buf(k.dst, node.dtype)]
                per2 = [f"{acc_t} res;"]
                load2 = [f"const {acc_t} v = part[o + r * {nout}{s2}];"]
                # folded updates run in this final pass, where each output's value is complete
                finish2 = self._reduce_finish(k, f"res{scale}", p2, b2, a2)
                self._segmented(k, nout, splits, nout == 1, acc_t, p2, b2, a2, per2,
                                [(init, load2, combine, "res", [])], [], finish2, w2)
                return
            per_out.append(f"{acc_t} res;")
            pre, el = element("r")
            phases = [(init, pre + [f"const {acc_t} v = {el};"], combine, "res", [])]
            finish = self._reduce_finish(k, f"res{scale}", params, binds, args)
        self._segmented(k, nout, count, row_mode, acc_t, params, binds, args, per_out, phases,
                        [], finish, wide)

    # -- row kernels ----------------------------------------------------------------------------
    def render_rowwise(self, k: Kernel) -> None:
        node = k.node
        x = node.inputs[0]
        mdt = math_dtype(node.dtype)
        mct = gtype(mdt)
        self._note_dtypes(mdt, node.dtype, x.dtype)
        f = "f" if mct == "float" else ""
        # as the C backend and ops/nn._shifted: an all -inf row shifts by 0; +inf stays (NaN row)
        fix = f"const {mct} mm = m == -INFINITY ? ({mct})0 : m;"
        wide = self._wide(_numel(x.shape))
        it, sfx = ("gc_i64", "L") if wide else ("int", "")
        if node.op in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            self._render_xent(k, mct, f, fix, wide)
            return
        axis = node.attrs["axis"]
        shape = x.shape
        outer = _numel(shape[:axis]) if axis else 1
        length = shape[axis]
        inner = _numel(shape[axis + 1:]) if axis + 1 < len(shape) else 1
        params = [self._param("x", x.dtype, True), self._param("out", node.dtype, False)]
        binds = [self._bind("x", x.dtype, True), self._bind("out", node.dtype, False)]
        args = [buf(k.srcs[0], x.dtype), buf(k.dst, node.dtype)]
        rows = outer * inner
        base = (f"(o / {inner}{sfx}) * {length * inner}{sfx} + (o % {inner}{sfx})" if inner != 1
                else f"o * {length}{sfx}")
        per_out = [f"const {it} base = ok ? {base} : 0;",
                   f"const GC_GLOBAL {gtype(x.dtype)}* row = x + base;", f"{mct} m, s;"]
        el = f"({mct})row[r * {inner}{sfx}]" if inner != 1 else f"({mct})row[r]"
        # C backend: non-finite max -> 0 (NaN included) before the exponentials
        phases = [("-INFINITY", [f"const {mct} v = {el};"], f"gc_max2{f}(a, v)", "m", [fix]),
                  ("0", [f"const {mct} v = gc_exp{f}({el} - mm);"], "a + v", "s", [])]
        ot = gtype(node.dtype)
        elj = f"({mct})row[j * {inner}{sfx}]" if inner != 1 else f"({mct})row[j]"
        oidx = f"base + j * {inner}{sfx}" if inner != 1 else "base + j"
        value = (f"gc_exp{f}({elj} - mm) / s" if node.op == "softmax"
                 else f"{elj} - mm - gc_log{f}(s)")
        finish_all = [f"for ({it} j = ly; j < {length}{sfx}; j += nly) "
                      f"out[{oidx}] = ({ot})({value});"]
        self._segmented(k, rows, length, inner == 1, mct, params, binds, args, per_out, phases,
                        finish_all, [], wide)

    def _render_xent(self, k: Kernel, mct: str, f: str, fix: str, wide: bool) -> None:
        """Cross-entropy rows (as the C backend's): the loss, its gradient (softmax - one_hot)
        * g, or both from one max and one exp sum when the gradient is the loss kernel's
        member.  Every thread of a row writes its share of the gradient; the first writes the
        loss and the status word."""
        node = k.node
        x, lab = node.inputs[0], node.inputs[1]
        n, c = x.shape
        sfx = "L" if wide else ""
        parts = xent_parts(k)
        loss, grad = parts.loss, parts.grad
        params = [self._param("x", x.dtype, True), self._param("labels", lab.dtype, True)]
        binds = [self._bind("x", x.dtype, True), self._bind("labels", lab.dtype, True)]
        args = [buf(k.srcs[0], x.dtype), buf(k.srcs[1], lab.dtype)]
        finish_all, finish = [], ["const gc_i64 y = (gc_i64)labels[o];"]
        if grad is not None:
            params += [self._param("g", grad.dtype, True), self._param("dx", grad.dtype, False)]
            binds += [self._bind("g", grad.dtype, True), self._bind("dx", grad.dtype, False)]
            args += [buf(parts.g_src, grad.dtype), buf(parts.grad_dst, grad.dtype)]
            it = "gc_i64" if wide else "int"
            finish_all = ["const gc_i64 yy = (gc_i64)labels[o];",
                          f"const {mct} gr = ({mct})g[o];",
                          f"for ({it} j = ly; j < {c}{sfx}; j += nly) dx[o * {c}{sfx} + j] = "
                          f"({gtype(grad.dtype)})((gc_exp{f}(({mct})row[j] - mm) / s - "
                          f"({mct})(j == yy)) * gr);"]
        if loss is not None:
            params.append(self._param("out", node.dtype, False))
            binds.append(self._bind("out", node.dtype, False))
            args.append(buf(k.dst, node.dtype))
            finish.append(f"out[o] = ({gtype(node.dtype)})((y >= 0 && y < {c}L) ? "
                          f"(mm - ({mct})row[y]) + gc_log{f}(s) : NAN);")  # exact, large logits
        per_out = [f"const GC_GLOBAL {gtype(x.dtype)}* row = x + (ok ? o : 0) * {c}{sfx};",
                   f"{mct} m, s;"]
        phases = [("-INFINITY", [f"const {mct} v = ({mct})row[r];"], f"gc_max2{f}(a, v)",
                   "m", [fix]),
                  ("0", [f"const {mct} v = gc_exp{f}(({mct})row[r] - mm);"], "a + v", "s", [])]
        status = label_status(self.lowered, k)
        if status and self._computed_labels(k):
            # the host checks fed labels before the step; computed ones are checked here:
            # the step stops after this kernel's launches when the status word is set
            params.append("GC_GLOBAL int* status_, gc_i64 status_o")
            binds.append("GC_GLOBAL int* status = status_ + status_o;")
            args.append(Arg("status", dtype="int32"))
            finish.append(f"if (!(y >= 0 && y < {c}L)) status[0] = {status};")
        self._segmented(k, n, c, True, mct, params, binds, args, per_out, phases, finish_all,
                        finish if len(finish) > 1 else [], wide)
        if status and self._computed_labels(k):
            self.status_launches = len(self.launches)

    # -- layout, random, copies ---------------------------------------------------------------
    def render_transpose(self, k: Kernel) -> None:
        """A transpose as ``lower.transpose_plan`` splits it: moving the contiguous axis of
        single elements goes through a local-memory tile (``_transpose_tiled``); a block copy
        and runs kept contiguous on both sides are one thread per element, consecutive threads
        on consecutive elements of a run (coalesced both ways when runs are long; short runs
        of a tiled plan are correct but not coalesced)."""
        node = k.node
        x = node.inputs[0]
        self._note_dtypes(node.dtype)
        plan = transpose_plan(tuple(x.shape), tuple(node.attrs["perm"]),
                              np.dtype(node.dtype).itemsize)
        if plan.kind == "tiled" and plan.run == 1:
            self._transpose_tiled(k, plan)
            return
        dims, src, dst = list(plan.dims) + [plan.run], list(plan.src) + [1], list(plan.dst) + [1]
        self._map_kernel(k, [("x", x.dtype, k.srcs[0])], ("out", node.dtype, k.dst), dims,
                         lambda w: [f"out[{self._index(dst, wide=w)}] = "
                                    f"x[{self._index(src, wide=w)}];"])

    def _transpose_tiled(self, k: Kernel, plan) -> None:
        """The classic tiled transpose: a work-group of 32 x 8 threads (TILE_THREADS, one
        dimension: tx = lane, ty = row of 8) moves a 32 x 32 tile of axes b (contiguous in the
        source) and a (contiguous in the destination).  Reads walk b and writes walk a, so
        both are coalesced; the tile goes through local memory padded to 33 columns, so the
        column reads of the store phase hit 32 different banks.  Work-groups stride over the
        tiles of every other axis and of (b, a); the loop is uniform within a group, so every
        thread reaches every barrier."""
        node = k.node
        x = node.inputs[0]
        t = gtype(node.dtype)
        a, b = plan.a, plan.b
        na, nb = plan.dims[a], plan.dims[b]
        nta, ntb = -(-na // TILE), -(-nb // TILE)
        outer = [plan.dims[d] for d in plan.outer]
        tiles = _numel(outer) * ntb * nta
        wide = self._wide(_numel(plan.dims))
        it, sfx = ("gc_i64", "L") if wide else ("int", "")

        def base(st) -> str:  # offset of the tile's outer index (o0, o1, ...) along ``st``
            return " + ".join(f"o{j}*{st[d]}{sfx}" for j, d in enumerate(plan.outer)) or "0"
        body = [f"GC_LOCAL {t} tile[{TILE}][{TILE + 1}];",
                "const int tx = GC_LOCAL_ID(0) % 32, ty = GC_LOCAL_ID(0) / 32;",
                f"for ({it} t = GC_GROUP_ID(0); t < {tiles}{sfx}; t += GC_NUM_GROUPS(0)) {{",
                f"    const {it} a0 = (t % {nta}{sfx}) * {TILE}, "
                f"b0 = ((t / {nta}{sfx}) % {ntb}{sfx}) * {TILE};",
                *([f"    const {it} r = t / {nta * ntb}{sfx};"] if outer else [])]
        body += ["    " + s for s in self._decompose(outer, "r", "o", wide)]
        body += [f"    const {it} sb = {base(plan.src)}, db = {base(plan.dst)};",
                 f"    for (int j = ty; j < {TILE}; j += {TILE_THREADS // TILE}) {{",
                 f"        const {it} ia = a0 + j, ib = b0 + tx;",
                 f"        if (ia < {na}{sfx} && ib < {nb}{sfx}) "
                 f"tile[j][tx] = x[sb + ia*{plan.src[a]}{sfx} + ib];",
                 "    }",
                 "    GC_BARRIER();",
                 f"    for (int j = ty; j < {TILE}; j += {TILE_THREADS // TILE}) {{",
                 f"        const {it} ib = b0 + j, ia = a0 + tx;",
                 f"        if (ib < {nb}{sfx} && ia < {na}{sfx}) "
                 f"out[db + ib*{plan.dst[b]}{sfx} + ia] = tile[tx][j];",
                 "    }",
                 "    GC_BARRIER();  /* the next tile overwrites this one */",
                 "}"]
        params = [self._param("x", x.dtype, True), self._param("out", node.dtype, False)]
        binds = [self._bind("x", x.dtype, True), self._bind("out", node.dtype, False)]
        self._emit(k, params, binds, body, [buf(k.srcs[0], x.dtype), buf(k.dst, node.dtype)],
                   (min(tiles, MAX_GROUPS), 1, 1), (TILE_THREADS, 1, 1), TILE_THREADS)

    def render_random(self, k: Kernel) -> None:
        node = k.node
        n = _numel(node.shape)
        seed = int(node.attrs["seed"]) & 0xFFFFFFFFFFFFFFFF
        cnt = node.inputs[0]
        self._note_dtypes(node.dtype)
        self._map_kernel(k, [("counter", cnt.dtype, k.srcs[0])], ("out", node.dtype, k.dst), [n],
                         lambda w: [f"out[i0] = ({gtype(node.dtype)})gc_uniform01({seed}UL, "
                                    f"(gc_u64)counter[0], (gc_u64)i0);"])

    def render_copy(self, k: Kernel) -> None:
        """Copies into output slots and parameter updates (broadcast to the target shape)."""
        src_node = k.node
        dst_shape = tuple(src_node.shape)
        if k.dst.where == "slot":
            dst_shape = tuple(self.lowered.slots[k.dst.index].node.shape)
        dtype = src_node.dtype
        st = strides_for(src_node.shape, dst_shape)
        dims, (s_st, d_st) = collapse(dst_shape, [st, strides_for(dst_shape, dst_shape)])
        self._note_dtypes(dtype)
        self._map_kernel(k, [("x", dtype, k.srcs[0])], ("out", dtype, k.dst), dims,
                         lambda w: [f"out[{self._index(d_st, wide=w)}] = "
                                    f"x[{self._index(s_st, wide=w)}];"])

    # -- the program ----------------------------------------------------------------------------
    def render(self) -> tuple[str, list[Launch]]:
        for k in self.lowered.kernels:
            getattr(self, f"render_{k.kind}")(k)
        slots = "\n".join(f" *   slots[{i}]: {s.kind} {comment(self._name(s.node))} "
                          f"{tuple(s.node.shape)} {s.node.dtype}"
                          for i, s in enumerate(self.lowered.slots))
        text = "\n".join([
            "/* Generated by graphc: one training/inference step as GPU kernels (gc_dialect.h).",
            " * Do not edit.  Launch order = kernel order; operands are (buffer, element offset).",
            " * arena: %d bytes" % self.lowered.arena_bytes,
            slots,
            " */",
            '#include "gc_math.h"',
            "",
            "\n\n".join(self.functions),
            ""])
        return text, self.launches


def lower_gpu(program, shapes) -> Lowered:
    """``lower`` as the GPU renderers take it: the same defaults as the C backend, updates
    folded into reductions included (``lower.FOLD_INTO_REDUCE``: the thread holding an
    output's final value also computes the bias update, see ``GPURenderer._reduce_finish``),
    but no maxout folded into a GEMM (C computes it from the rows of C in registers and cache,
    see ``lower.FOLD_GROUP_MAX``; the GPU GEMM has no row hook)."""
    return lower(program, shapes, fold_group_max=False)


def render_gpu(lowered: Lowered) -> tuple[str, list[Launch]]:
    """(kernel text, launches) of ``lowered``."""
    return GPURenderer(lowered).render()
