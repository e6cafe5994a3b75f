"""CRenderer: a ``Lowered`` program -> one C translation unit with one entry point.

``int gc_step(void **slots, char *arena)`` runs every kernel in order.  Each kernel is a static
function preceded by a comment naming the graph node it computes and where the user built it.
Names that reach the source are sanitized identifiers; all user text is inside comments made
safe by ``lower.comment``.  Identical programs render identical source (the compile cache key).
"""
from __future__ import annotations

import numpy as np

from ..lower import (BLOCK_BYTES, TILE_BYTES, Kernel, Lowered, collapse, comment, fused_plan,
                     label_status, linear_update, plan_loop, strides_for, transpose_plan,
                     xent_parts)
from .c_reduce import reduce_accumulator, reduce_kernel
from .c_types import GC_PAR_MIN, compute_type, converts_only, ctype, math_dtype, pointer
from .cexpr import render_expr, render_plan


class CRenderer:
    """Renders a Lowered program as C (see module docstring)."""

    def __init__(self, lowered: Lowered):
        self.lowered = lowered
        self.functions: list[str] = []
        self.calls: list[str] = []

    # -- helpers ----------------------------------------------------------------------------
    def _header(self, k: Kernel) -> str:
        n = k.node
        label = n.attrs.get("label", n.op)
        also = "".join(f"\n * and {'updates in place' if m.in_place else 'computes'}: node "
                       f"{comment(self.lowered.name(m.node))} = "
                       f"{comment(m.node.attrs.get('label', m.node.op))}" for m in k.members)
        if k.prologue is not None:
            e = k.prologue.node
            also += (f"\n * computing per element its input: node "
                     f"{comment(self.lowered.name(e))} = {comment(e.attrs.get('label', e.op))}, "
                     f"built at {comment(e.where)}")
        if k.group_max is not None:
            g = k.group_max
            also += (f"\n * and computes: node {comment(self.lowered.name(g.node))} = maxout of "
                     f"{g.pieces} pieces {tuple(g.node.shape)}, built at {comment(g.node.where)}")
        return (f"/* {k.name}: node {comment(self.lowered.name(n))} = {comment(label)} "
                f"{tuple(n.shape)} {n.dtype}, built at {comment(n.where)}{also} */")

    def _emit(self, k: Kernel, params: list[str], body: list[str], args: list[str],
              status: int = 0) -> None:
        """``status`` > 0: the kernel returns int, and a nonzero result ends the step with that
        status (invalid data found; lowering schedules every in-place update after it)."""
        sig = ", ".join(params) if params else "void"
        ret = "int" if status else "void"
        self.functions.append("\n".join([self._header(k), f"static {ret} {k.name}({sig}) {{"]
                                        + ["    " + line for line in body] + ["}"]))
        call = f"{k.name}({', '.join(args)})"
        self.calls.append(f"    if ({call}) return {status};" if status else f"    {call};")

    # -- elementwise --------------------------------------------------------------------------
    def _loop_nest(self, dims, index_vars, inner: list[str], parallel: bool) -> list[str]:
        lines = []
        total = int(np.prod(dims)) if dims else 1
        for d, (n, v) in enumerate(zip(dims, index_vars)):
            pad = "    " * d
            if d == 0 and parallel and total >= 32768:
                simd = " simd" if len(dims) == 1 else ""
                lines.append(f"{pad}#pragma omp parallel for{simd} schedule(static) "
                             "num_threads(gc_threads())")
            elif d == len(dims) - 1:
                lines.append(f"{pad}#pragma omp simd")
            lines.append(f"{pad}for (long {v} = 0; {v} < {n}L; {v}++) {{")
        pad = "    " * len(dims)
        lines += [pad + s for s in inner]
        for d in range(len(dims) - 1, -1, -1):
            lines.append("    " * d + "}")
        return lines

    @staticmethod
    def _store(value: str, dtype: str) -> str:
        return f"({ctype(dtype)})({value})" if dtype != "bool" else f"(uint8_t)(({value}) != 0)"

    def render_ew(self, k: Kernel) -> None:
        plan = fused_plan(k)
        dims, in_strides, out_strides = plan_loop(plan)
        ivars = [f"i{d}" for d in range(len(dims))]

        def index(st):
            terms = [f"{v}*{s}L" if s != 1 else v for v, s in zip(ivars, st) if s]
            return " + ".join(terms) or "0"

        mdt, mct = compute_type([n.dtype for n, _ in plan.outputs] +
                                [t.dtype for t, _ in plan.operands], converts_only(plan))
        loads = [f"(({mct})in{j}[{index(st)}])" for j, st in enumerate(in_strides)]
        # one-element operands (constants, scalar hyper-parameters) are read once, before the
        # loop: a load inside a ?: branch (where(|m| < tiny, 0, m)) kept gcc from vectorizing
        # the loop (it may not speculate the load), 4x slower on Adam's update
        hoisted = [j for j, st in enumerate(in_strides)
                   if dims and all(n == 1 for n, s in zip(dims, st) if s)]
        for j in hoisted:
            loads[j] = f"in{j}_0"
        outs = ["out"] if len(plan.outputs) == 1 else [f"out{o}" for o in range(len(plan.outputs))]
        stmts, values = render_plan(plan, loads, mdt, mct, self._store)
        inner = stmts + [f"{name}[{index(out_strides[o])}] = {values[o]};"
                         for o, name in enumerate(outs)]
        params = [f"const {ctype(t.dtype)}* in{j}" for j, (t, _) in enumerate(plan.operands)]
        params += [f"{ctype(n.dtype)}* {name}" for name, (n, _) in zip(outs, plan.outputs)]
        body = self._loop_nest(dims, ivars, inner, parallel=True) if dims else inner
        body = [f"const {mct} in{j}_0 = (({mct})in{j}[0]);" for j in hoisted] + body
        args = [pointer(st, t.dtype) for t, st in plan.operands]
        args += [pointer(st, n.dtype, const=False) for n, st in plan.outputs]
        self._emit(k, params, body, args)

    # -- GEMM ---------------------------------------------------------------------------------
    def render_dense(self, k: Kernel) -> None:
        node = k.node
        a, b = node.inputs[0], node.inputs[1]
        ta, tb = node.attrs["trans_a"], node.attrs["trans_b"]
        m, n = node.shape
        kk = a.shape[0] if ta else a.shape[1]
        mdt = math_dtype(node.dtype)
        mct = ctype(mdt)
        plan = fused_plan(k)

        def at(shape) -> str:  # element (i, j) of an ep array broadcast to (m, n)
            st = strides_for(shape, (m, n))
            return " + ".join(f"(long)({v})*{s}L" for v, s in zip(("i", "j"), st) if s) or "0"

        lda = m if ta else kk
        ldb = kk if tb else n
        fn = f"{k.name}_gemm"
        gemm_args = (f"{m}, {n}, {kk}, {pointer(k.srcs[0], a.dtype)}, {lda}, {int(ta)}, "
                     f"{pointer(k.srcs[1], b.dtype)}, {ldb}, {int(tb)}, "
                     f"{pointer(k.dst, node.dtype, const=False)}, {n}")
        linear = linear_update(k, plan) if k.group_max is None else None
        if linear is not None:  # C += alpha * (A @ B): no epilogue pass over the tiles
            alpha, refs = linear
            args = [f"(({mct})({pointer(plan.operands[q][1], plan.operands[q][0].dtype)})[0])"
                    if kind == "in" else "0" for kind, q in refs]
            stmts, value = render_expr(alpha, args, mdt, tmp_prefix="al")
            alpha_c = f"({{ {' '.join(stmts)} ({mct})({value}); }})" if stmts else value
            self.functions.append("\n".join([
                self._header(k), f"#define GC_GEMM_NAME {fn}", f"#define GC_GEMM_REAL {mct}",
                '#include "gc_gemm.h"']))
            self.calls.append(f"    {fn}_axpy({gemm_args}, {alpha_c});")
            return
        loads = [f"(({mct})((const {ctype(t.dtype)}*)ep[{q}])[{at(t.shape)}])"
                 for q, (t, _) in enumerate(plan.operands)]
        # one-element operands are loaded first, unconditionally: a load inside a ?: branch
        # (a flushed momentum buffer's 0) keeps gcc from vectorizing the epilogue loop
        read = {i for _, refs in plan.exprs for kind, i in refs if kind == "in"}
        scalars = [q for q, (t, _) in enumerate(plan.operands) if q in read and at(t.shape) == "0"]
        preload = [f"const {mct} gc_e{q} = {loads[q]};" for q in scalars]
        for q in scalars:
            loads[q] = f"gc_e{q}"
        # members' values are stored through ep after every load; r0 is what the GEMM stores
        stmts, values = render_plan(plan, loads, mdt, mct, self._store)
        stmts = preload + stmts
        nops = len(plan.operands)
        stores = [f"(({ctype(t.dtype)}*)ep[{nops + o - 1}])[{at(t.shape)}] = {values[o]};"
                  for o, (t, _) in enumerate(plan.outputs) if o]
        epilogue = f"({{ {' '.join(stmts + stores)} r0; }})"
        eps = [pointer(st, t.dtype) for t, st in plan.operands]
        eps += [pointer(st, t.dtype, const=False) for t, st in plan.outputs[1:]]
        hook = []
        if k.group_max is not None:
            hook = self._group_max_hook(k, len(eps))
            eps.append(pointer(k.group_max.dst, k.group_max.node.dtype, const=False))
        self.functions.append("\n".join([
            self._header(k),
            f"#define GC_GEMM_NAME {fn}",
            f"#define GC_GEMM_REAL {mct}",
            f"#define GC_GEMM_EPILOGUE(acc, i, j) {epilogue}",
            *hook,
            '#include "gc_gemm.h"']))
        ep = ("(const void* const[]){" + ", ".join(eps) + "}") if eps else "0"
        self.calls.append(f"    {fn}({gemm_args}, 0, {ep});")

    @staticmethod
    def _group_max_hook(k: Kernel, slot: int) -> list[str]:
        """gc_gemm.h's row hook computing the kernel's maxout (``lower.GroupMax``) into
        ``ep[slot]``: out[i, u] = max_p row[u * P + p] over the finished values of C's row i,
        with the max reduction's own accumulator, initial value and combine (so NaN propagates
        and ties resolve exactly as ``render_reduce``'s loop over the same P values does)."""
        g = k.group_max
        node, pieces = g.node, g.pieces
        units = int(k.node.shape[1]) // pieces
        acc_t, init, combine = reduce_accumulator("max", k.node.dtype, node.dtype, pieces)
        out_t = ctype(node.dtype)
        return [
            f"#define GC_GEMM_ROW_GROUP {pieces}",
            "#define GC_GEMM_ROW_HOOK(row, i, j0, n) { "
            f"{out_t}* gc_o = ({out_t}*)ep[{slot}] + (long)(i) * {units}L + (j0) / {pieces}; "
            # simd: the groups are independent and out is no row's storage (no alias check)
            f"_Pragma(\"omp simd\") for (int gc_u = 0; gc_u < (n) / {pieces}; ++gc_u) {{ "
            f"{acc_t} a = {init}; "
            f"for (int gc_p = 0; gc_p < {pieces}; ++gc_p) {{ "
            f"{acc_t} v = ({acc_t})(row)[gc_u * {pieces} + gc_p]; a = {combine}; }} "
            f"gc_o[gc_u] = ({out_t})(a); }} }}"]

    def render_matmul(self, k: Kernel) -> None:
        """Batched matmul (rank > 2): one GEMM per batch element, broadcasting batch axes;
        a ``bmm`` reads transposed operands through the GEMM's trans flags."""
        node = k.node
        a, b = node.inputs
        batch = tuple(node.shape[:-2])
        m, n = node.shape[-2:]
        ta, tb = bool(node.attrs.get("trans_a")), bool(node.attrs.get("trans_b"))
        kk = a.shape[-2] if ta else a.shape[-1]
        mct = ctype(math_dtype(node.dtype))
        fn = f"{k.name}_gemm"
        self.functions.append("\n".join([
            self._header(k), f"#define GC_GEMM_NAME {fn}", f"#define GC_GEMM_REAL {mct}",
            '#include "gc_gemm.h"']))
        sa = strides_for(a.shape[:-2], batch)
        sb = strides_for(b.shape[:-2], batch)
        ivars = [f"i{d}" for d in range(len(batch))]
        off_a = " + ".join(f"{v}*{s * m * kk}L" for v, s in zip(ivars, sa) if s) or "0"
        off_b = " + ".join(f"{v}*{s * kk * n}L" for v, s in zip(ivars, sb) if s) or "0"
        off_c = " + ".join(f"{v}*{s * m * n}L" for v, s in
                           zip(ivars, strides_for(batch, batch)) if s) or "0"
        inner = [f"{fn}({m}, {n}, {kk}, A + {off_a}, {m if ta else kk}, {int(ta)}, B + {off_b}, "
                 f"{kk if tb else n}, {int(tb)}, C + {off_c}, {n}, 0, 0);"]
        body = []
        for d, (size, v) in enumerate(zip(batch, ivars)):
            body.append("    " * d + f"for (long {v} = 0; {v} < {size}L; {v}++) {{")
        body += ["    " * len(batch) + s for s in inner]
        body += ["    " * d + "}" for d in range(len(batch) - 1, -1, -1)]
        params = [f"const {mct}* A", f"const {mct}* B", f"{mct}* C"]
        args = [pointer(k.srcs[0], a.dtype), pointer(k.srcs[1], b.dtype),
                pointer(k.dst, node.dtype, const=False)]
        self._emit(k, params, body, args)

    # -- reductions ---------------------------------------------------------------------------
    def render_reduce(self, k: Kernel) -> None:
        """A reduction (codegen/c_reduce.py)."""
        self._emit(k, *reduce_kernel(k, self._store))

    # -- row kernels ----------------------------------------------------------------------------
    def render_rowwise(self, k: Kernel) -> None:
        node = k.node
        x = node.inputs[0]
        mct = ctype(math_dtype(node.dtype))
        f = "f" if mct == "float" else ""
        if node.op in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            self._render_xent(k, mct, f)
            return
        axis = node.attrs["axis"]
        shape = x.shape
        outer = int(np.prod(shape[:axis])) if axis else 1
        length = shape[axis]
        inner = int(np.prod(shape[axis + 1:])) if axis + 1 < len(shape) else 1
        at = f"[j * {inner}L]"
        if node.op == "softmax":  # one exp per element (scalar libm calls): kept in out
            sums = f"{{ const {mct} e = gc_exp{f}(row{at} - m); out[base + j * {inner}L] = e; s += e; }}"
            tail = f"out[base + j * {inner}L] /= s;"
        else:
            sums = f"s += gc_exp{f}(row{at} - m);"
            tail = f"out[base + j * {inner}L] = row{at} - m - gc_log{f}(s);"
        if inner > 1:
            body = self._rowwise_strided(node.op, mct, f, outer, length, inner)
        else:
            body = [
                "#pragma omp parallel for num_threads(gc_threads()) if (%dL > 4096L)"
                % (outer * length * inner),
                f"for (long o = 0; o < {outer * inner}L; o++) {{",
                f"    const long base = (o / {inner}L) * {length * inner}L + (o % {inner}L);",
                f"    const {mct}* row = x + base;",
                f"    {mct} m = -INFINITY, s = 0;",
                f"    for (long j = 0; j < {length}L; j++) m = gc_max2{f}(m, row{at});",
                "    if (m == -INFINITY) m = 0;  /* +inf stays: the row is NaN (ops/nn._shifted) */",
                "    #pragma omp simd reduction(+:s)",
                f"    for (long j = 0; j < {length}L; j++) {sums}",
                f"    for (long j = 0; j < {length}L; j++) {tail}",
                "}"]
        params = [f"const {mct}* x", f"{mct}* out"]
        args = [pointer(k.srcs[0], x.dtype), pointer(k.dst, node.dtype, const=False)]
        self._emit(k, params, body, args)

    def _render_xent(self, k: Kernel, mct: str, f: str) -> None:
        """Cross-entropy rows: the loss (softmax_cross_entropy), its gradient (softmax - one_hot)
        * g (softmax_cross_entropy_grad), or both in one pass when lowering made the gradient a
        member of the loss's kernel.  Labels computed in the graph are checked here (fed ones
        before the call, in Python): an invalid one ends the step with this kernel's status."""
        node = k.node
        x, lab = node.inputs[0], node.inputs[1]
        n, c = x.shape
        parts = xent_parts(k)
        loss, grad = parts.loss, parts.grad
        params = [f"const {mct}* x", f"const {ctype(lab.dtype)}* labels"]
        args = [pointer(k.srcs[0], x.dtype), pointer(k.srcs[1], lab.dtype)]
        # exp(x - m) once per element; with a gradient it is kept in the gradient's row
        if grad is not None:
            params += [f"const {mct}* g", f"{mct}* dx"]
            args += [pointer(parts.g_src, grad.dtype),
                     pointer(parts.grad_dst, grad.dtype, const=False)]
            sums = (f"for (long j = 0; j < {c}L; j++) {{ const {mct} e = gc_exp{f}(row[j] - m); "
                    "d[j] = e; s += e; }")
        else:
            sums = f"for (long j = 0; j < {c}L; j++) s += gc_exp{f}(row[j] - m);"
        if loss is not None:
            params.append(f"{mct}* out")
            args.append(pointer(k.dst, loss.dtype, const=False))
        body = [
            "int bad = 0;",
            "#pragma omp parallel for num_threads(gc_threads()) if (%dL > 4096L) "
            "reduction(|:bad)" % (n * c),
            f"for (long r = 0; r < {n}L; r++) {{",
            f"    const {mct}* row = x + r * {c}L;"]
        if grad is not None:
            body.append(f"    {mct}* d = dx + r * {c}L;")
        body += [
            f"    {mct} m = -INFINITY, s = 0;",
            f"    for (long j = 0; j < {c}L; j++) m = gc_max2{f}(m, row[j]);",
            "    if (m == -INFINITY) m = 0;  /* +inf stays: the row is NaN (ops/nn._shifted) */",
            "    #pragma omp simd reduction(+:s)",  # vector exp (libmvec) where available
            "    " + sums,
            "    const long y = (long)labels[r];",
            f"    const int ok = y >= 0 && y < {c}L;",
            "    bad |= !ok;"]
        if loss is not None:  # (m - x_y) + log s: with large logits log(s) + m rounds the loss away
            body.append(f"    out[r] = ok ? (m - row[y]) + gc_log{f}(s) : NAN;")
        if grad is not None:
            body += [f"    const {mct} gr = g[r];",
                     "    #pragma omp simd",
                     f"    for (long j = 0; j < {c}L; j++) d[j] = (d[j] / s - ({mct})(j == y)) * gr;"]
        body += ["}", "return bad;"]
        self._emit(k, params, body, args, status=label_status(self.lowered, k))

    @staticmethod
    def _rowwise_strided(op: str, mct: str, f: str, outer: int, length: int, inner: int):
        """softmax / log_softmax over a non-last axis: the reduced elements of one output are
        ``inner`` apart, so walking them one output at a time reads a cache line per element.
        Instead blocks of up to 256 neighbouring outputs walk the axis together, row by row
        (contiguous, vectorized), each with its own max and sum: the same arithmetic as the
        contiguous case, per output."""
        blocks = -(-inner // 256)
        e = f"gc_exp{f}(X[j * {inner}L + i] - m[i])"
        if op == "softmax":
            sums = f"{{ const {mct} v = {e}; O[j * {inner}L + i] = v; s[i] += v; }}"
            tail = f"O[j * {inner}L + i] /= s[i];"
        else:
            sums = f"s[i] += {e};"
            tail = f"O[j * {inner}L + i] = X[j * {inner}L + i] - m[i] - s[i];"
        return [
            "#pragma omp parallel for num_threads(gc_threads()) if (%dL > 4096L)"
            % (outer * length * inner),
            f"for (long t = 0; t < {outer * blocks}L; t++) {{",
            f"    const long i0 = (t % {blocks}L) * 256L, n = {inner}L - i0 < 256L ? "
            f"{inner}L - i0 : 256L;",
            f"    const {mct}* X = x + (t / {blocks}L) * {length * inner}L + i0;",
            f"    {mct}* O = out + (t / {blocks}L) * {length * inner}L + i0;",
            f"    {mct} m[256], s[256];",
            "    for (long i = 0; i < n; i++) { m[i] = -INFINITY; s[i] = 0; }",
            f"    for (long j = 0; j < {length}L; j++)",
            f"        for (long i = 0; i < n; i++) m[i] = gc_max2{f}(m[i], X[j * {inner}L + i]);",
            "    for (long i = 0; i < n; i++) if (m[i] == -INFINITY) m[i] = 0;",
            f"    for (long j = 0; j < {length}L; j++) {{",
            "        #pragma omp simd",
            f"        for (long i = 0; i < n; i++) {sums}",
            "    }",
            *([] if op == "softmax" else
              [f"    for (long i = 0; i < n; i++) s[i] = gc_log{f}(s[i]);"]),
            f"    for (long j = 0; j < {length}L; j++) {{",
            "        #pragma omp simd",
            f"        for (long i = 0; i < n; i++) {tail}",
            "    }",
            "}"]

    # -- layout, random, copies ---------------------------------------------------------------
    def render_transpose(self, k: Kernel) -> None:
        """A transpose as ``lower.transpose_plan`` splits it: one block copy, contiguous runs
        copied one after another, or square tiles (``_transpose_tiled``)."""
        node = k.node
        x = node.inputs[0]
        t = ctype(node.dtype)
        size = np.dtype(node.dtype).itemsize
        plan = transpose_plan(tuple(x.shape), tuple(node.attrs["perm"]), size)
        if plan.kind == "copy":
            body = [f"memcpy(out, x, {plan.run}UL * sizeof({t}));"]
        elif plan.kind == "rows":
            body = self._transpose_rows(plan, t)
        else:
            body = self._transpose_tiled(plan, t, size)
        self._emit(k, [f"const {t}* restrict x", f"{t}* restrict out"], body,
                   [pointer(k.srcs[0], x.dtype), pointer(k.dst, node.dtype, const=False)])

    @staticmethod
    def _parallel_nest(loops: list[tuple[str, int]], total: int) -> list[str]:
        """Perfectly nested loops (variable, trip count) shared out among the threads as one
        collapsed range when the kernel moves at least GC_PAR_MIN elements."""
        lines = []
        if total >= GC_PAR_MIN:
            c = f" collapse({len(loops)})" if len(loops) > 1 else ""
            lines.append(f"#pragma omp parallel for{c} schedule(static) num_threads(gc_threads())")
        lines += ["    " * d + f"for (long {v} = 0; {v} < {n}L; {v}++)"
                  for d, (v, n) in enumerate(loops)]
        return lines

    @staticmethod
    def _offset(terms: list[tuple[str, int]]) -> str:
        return " + ".join(f"{v}*{s}L" if s != 1 else v for v, s in terms if s) or "0"

    def _transpose_rows(self, plan, t: str) -> list[str]:
        """The last axis stays in place: every index of the other axes copies one run of
        ``plan.run`` elements that is contiguous on both sides (a vectorized loop: as fast as
        an inlined memcpy, and no libc call per run for runs of a KB or more)."""
        ivars = [f"i{d}" for d in range(len(plan.dims))]
        loops = self._parallel_nest(list(zip(ivars, plan.dims)),
                                     int(np.prod(plan.dims)) * plan.run)
        src = self._offset(list(zip(ivars, plan.src)))
        dst = self._offset(list(zip(ivars, plan.dst)))
        pad = "    " * len(ivars)
        return loops[:-1] + [loops[-1] + " {", pad + "#pragma omp simd",
                             pad + f"for (long c = 0; c < {plan.run}L; c++) "
                             f"out[{dst} + c] = x[{src} + c];", pad[4:] + "}"]

    def _transpose_tiled(self, plan, t: str, size: int) -> list[str]:
        """Tiles of TB x TA positions of the source-contiguous axis b and the
        destination-contiguous axis a: each tile reads TA short runs of the source and writes
        TB short runs of the destination, about one cache line each (TILE_BYTES), so every
        line is fetched once instead of once per element.  The inner loop walks the
        destination (contiguous stores, vectorized).  Tiles of the other axes and of (b, a)
        are one collapsed parallel range."""
        a, b, run = plan.a, plan.b, plan.run
        na, nb = plan.dims[a], plan.dims[b]
        edge = max(8, min(64, TILE_BYTES // (run * size)))
        ta_n, tb_n = min(edge, na), min(edge, nb)  # a short axis is one (full) tile
        if max(plan.src[a] * na, plan.dst[b] * nb) * size <= BLOCK_BYTES:
            # the block's lines stay in L1 through a plain loop over it, whose long inner
            # loop and sequential stores beat short tiles (1.3x, a batch of 128 x 64 float32)
            ta_n, tb_n = na, nb
        outer = [(f"i{d}", plan.dims[d]) for d in plan.outer]
        ntb, nta = -(-nb // tb_n), -(-na // ta_n)
        loops = self._parallel_nest(outer + [(v, n) for v, n in (("tb", ntb), ("ta", nta))
                                             if n > 1], int(np.prod(plan.dims)) * run)
        src = self._offset([(v, plan.src[d]) for (v, _), d in zip(outer, plan.outer)]
                           + [("b0", plan.src[b]), ("a0", plan.src[a])])
        dst = self._offset([(v, plan.dst[d]) for (v, _), d in zip(outer, plan.outer)]
                           + [("b0", plan.dst[b]), ("a0", plan.dst[a])])

        def tile(nb_: str, na_: str) -> list[str]:
            # source offset of (ib, ia, c): ib*run + ia*src_a + c; destination: ib*dst_b +
            # ia*run + c (the tiled axes' strides are one run on their contiguous side)
            if run == 1:
                return [f"for (long ib = 0; ib < {nb_}; ib++) {{",
                        "    #pragma omp simd",
                        f"    for (long ia = 0; ia < {na_}; ia++) "
                        f"d[ib*{plan.dst[b]}L + ia] = s[ib + ia*{plan.src[a]}L];",
                        "}"]
            return [f"for (long ib = 0; ib < {nb_}; ib++)",
                    f"    for (long ia = 0; ia < {na_}; ia++) {{",
                    "        #pragma omp simd",
                    f"        for (long c = 0; c < {run}L; c++) "
                    f"d[ib*{plan.dst[b]}L + ia*{run}L + c] = s[ib*{run}L + ia*{plan.src[a]}L + c];",
                    "    }"]

        body = [f"const long b0 = {f'tb * {tb_n}L' if ntb > 1 else '0'}, "
                f"a0 = {f'ta * {ta_n}L' if nta > 1 else '0'};",
                f"const {t}* s = x + {src};",
                f"{t}* d = out + {dst};"]
        if nb % tb_n == 0 and na % ta_n == 0:
            body += tile(f"{tb_n}L", f"{ta_n}L")
        else:  # edge tiles take the loop with run-time bounds; full ones keep constant bounds
            body += [f"if (b0 + {tb_n}L <= {nb}L && a0 + {ta_n}L <= {na}L) {{"]
            body += ["    " + s for s in tile(f"{tb_n}L", f"{ta_n}L")]
            body += ["} else {",
                     f"    const long nb = {nb}L - b0 < {tb_n}L ? {nb}L - b0 : {tb_n}L;",
                     f"    const long na = {na}L - a0 < {ta_n}L ? {na}L - a0 : {ta_n}L;"]
            body += ["    " + s for s in tile("nb", "na")] + ["}"]
        if not loops:  # one tile: the whole transpose
            return body
        depth = len(loops) - (loops[0].startswith("#pragma"))
        return loops[:-1] + [loops[-1] + " {"] + ["    " * depth + s for s in body] + \
            ["    " * (depth - 1) + "}"]

    def render_random(self, k: Kernel) -> None:
        node = k.node
        n = int(np.prod(node.shape)) if node.shape else 1
        seed = int(node.attrs["seed"]) & 0xFFFFFFFFFFFFFFFF
        body = ["const gc_u64 c = (gc_u64)counter[0];",
                f"#pragma omp parallel for num_threads(gc_threads()) if ({n}L > 65536L)",
                f"for (long i = 0; i < {n}L; i++) out[i] = "
                f"({ctype(node.dtype)})gc_uniform01({seed}ULL, c, (gc_u64)i);"]
        cnt = node.inputs[0]
        self._emit(k, [f"const {ctype(cnt.dtype)}* counter", f"{ctype(node.dtype)}* out"], body,
                   [pointer(k.srcs[0], cnt.dtype), pointer(k.dst, node.dtype, const=False)])

    def render_copy(self, k: Kernel) -> None:
        """Copies into output slots and parameter updates (broadcast to the target's shape)."""
        src, dst, node = k.srcs[0], k.dst, k.node
        dst_shape = tuple(self.lowered.slots[dst.index].node.shape) if dst.where == "slot" \
            else tuple(node.shape)
        if dst_shape == tuple(node.shape):
            self.calls.append(f"    /* {comment(k.name)}: {comment(self.lowered.name(node))} */"
                              f"\n    memmove({pointer(dst, 'uint8', const=False)}, "
                              f"{pointer(src, 'uint8')}, {dst.nbytes});")
            return
        dims, (s_st, d_st) = collapse(dst_shape, [strides_for(node.shape, dst_shape),
                                                  strides_for(dst_shape, dst_shape)])
        ivars = [f"i{d}" for d in range(len(dims))]
        idx = lambda s: " + ".join(f"{v}*{t}L" for v, t in zip(ivars, s) if t) or "0"  # noqa
        body = self._loop_nest(dims, ivars, [f"out[{idx(d_st)}] = x[{idx(s_st)}];"],
                               parallel=True)
        t = ctype(node.dtype)
        self._emit(k, [f"const {t}* x", f"{t}* out"], body,
                   [pointer(src, node.dtype), pointer(dst, node.dtype, const=False)])

    # -- the translation unit -------------------------------------------------------------------
    def render(self) -> str:
        for k in self.lowered.kernels:
            getattr(self, f"render_{k.kind}")(k)
        n = len(self.calls)
        timed = []
        for i, call in enumerate(self.calls):  # per-kernel timers, compiled in with GC_PROFILE
            timed.append("#ifdef GC_PROFILE\n    { double gc_t0 = gc_wtime();\n#endif\n"
                         f"{call}\n#ifdef GC_PROFILE\n    gc_prof[{i}] += gc_wtime() - gc_t0; }}"
                         "\n#endif")
        slots = "\n".join(f" *   slots[{i}]: {s.kind} {comment(self.lowered.name(s.node))} "
                          f"{tuple(s.node.shape)} {s.node.dtype}"
                          for i, s in enumerate(self.lowered.slots))
        return "\n".join([
            "/* Generated by graphc: one training/inference step. Do not edit.",
            " * arena: %d bytes" % self.lowered.arena_bytes,
            slots,
            " */",
            '#include <stdlib.h>',
            '#include "gc_runtime.h"',
            "",
            "\n\n".join(self.functions),
            "",
            f"static double gc_prof[{max(n, 1)}];",
            "double *gc_profile(int *n) { *n = %d; return gc_prof; }" % n,
            "",
            "int gc_step(void **slots, char *arena) {",
            "\n".join(timed),
            "    return 0;",
            "}",
            ""])


def render_c(lowered: Lowered) -> str:
    return CRenderer(lowered).render()
