"""Reductions (sum, mean, max, logsumexp) as C: independent tasks, no heap.

Each task owns one output (the reduced axis is the contiguous one: a scalar accumulator over
rows) or a block of up to REDUCE_BLOCK neighbouring outputs (a contiguous axis is kept, e.g. a
bias gradient's column sum: a stack array walked row by row, vectorized across the block).
When the outputs give too few tasks (a full sum, (2048, 256) over axis 0), the largest reduced
group is also split into chunks whose partials, kept on the caller's stack, are combined
afterwards in chunk order.  Task and chunk counts depend on the shapes only, so the result is
the same for any thread count.  A reduction with a prologue (``lower.Prologue``) reads its
operands instead of x, each at its own strides, and computes the folded node's value at every
element it loads; one with members (a bias's in-place updates) computes them from each final
value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..lower import FusedPlan, Kernel, ReduceRead, fused_plan, reduce_read
from .c_types import GC_PAR_MIN, compute_type, ctype, pointer
from .cexpr import render_plan

LONG_REDUCTION = 4096  # terms per output above which float32 sums accumulate in double
REDUCE_BLOCK = 256      # neighbouring outputs one reduction task accumulates together
REDUCE_LANES = 32       # interleaved accumulators of a max along the contiguous axis
REDUCE_TASKS = 32       # tasks a parallel reduction aims for (more than the cores, for balance)
REDUCE_MIN_TASK = 8192  # elements per task at least, when the reduced range is split
REDUCE_PARTIALS = 32768  # bytes of chunk partials on the caller's stack at most


def reduce_accumulator(op: str, in_dtype: str, out_dtype: str, count: int = 0
                       ) -> tuple[str, str, str]:
    """(C accumulator type, initial value, combine expression of ``a`` and ``v``) of a reduction.

    Integer data never goes through float (a float32 holds integers exactly only up to 2**24):
    integer sums accumulate in uint64_t (wrapping like numpy's 64-bit sum, without signed
    overflow), then are cast to the output dtype; integer max compares in the integer type;
    mean and logsumexp of integers compute in double, as numpy does; float sums and means of
    more than LONG_REDUCTION terms (``count``) accumulate in double."""
    int_in = np.dtype(in_dtype).kind in "iub"
    if op == "max" and int_in:
        lo = int(np.iinfo(np.dtype(in_dtype)).min) if in_dtype != "bool" else 0
        # (lo + 1) - 1: INT64_MIN written as one literal would overflow
        init = f"(({ctype(in_dtype)})({lo + 1}LL - 1))" if lo else "0"
        return ctype(in_dtype), init, "(a > v ? a : v)"
    if op == "sum" and np.dtype(out_dtype).kind in "iub":
        return "uint64_t", "0", "a + v"
    # long float32 sums and means too: a float accumulator over 10**6 terms was off by 4e-4
    # relative (numpy and torch sum pairwise: ~1e-7); short ones (a bias gradient's column
    # sum over the batch) keep float, as numpy's sums across rows do
    long_sum = op in ("sum", "mean") and count > LONG_REDUCTION
    acc_t = "double" if int_in or out_dtype == "float64" or long_sum else "float"
    f = "f" if acc_t == "float" else ""
    init = {"sum": "0", "mean": "0", "max": "-INFINITY", "logsumexp": "-INFINITY"}[op]
    combine = {"sum": "a + v", "mean": "a + v", "max": f"gc_max2{f}(a, v)",
               "logsumexp": None}[op]
    return acc_t, init, combine


@dataclass
class ReduceTasks:
    """How a reduction splits into tasks.  Everything depends on the shapes only, so the result
    is the same for any thread count."""
    sizes: list            # size of each merged group of axes (``ReduceRead.groups``)
    red: list              # indices of the reduced groups
    kept: list             # indices of the kept groups a task index decodes (block: but the last)
    out_st: list           # per group: its stride in the output (0 for reduced groups)
    block: bool            # the contiguous axis is kept: a task owns REDUCE_BLOCK neighbours
    inner: int             # outputs along that contiguous axis (1 unless ``block``)
    nblk: int              # blocks along it
    out_tasks: int         # tasks the outputs give
    nout: int
    nin: int
    count: int             # elements reduced into each output
    nc: int                # chunks of the split group (1: not split)
    split: Optional[int]   # the largest reduced group, split into ``nc`` chunks
    parallel: bool


def reduce_tasks(rd: ReduceRead, node, op: str, acc_t: str) -> ReduceTasks:
    groups = rd.groups
    x = node.inputs[0]
    nout = int(np.prod(node.shape)) if node.shape else 1
    nin = int(np.prod(x.shape)) if x.shape else 1
    sizes = [g[1] for g in groups]
    out_st, acc = [0] * len(groups), 1
    for gi in range(len(groups) - 1, -1, -1):
        if not groups[gi][0]:
            out_st[gi] = acc
            acc *= groups[gi][1]
    red = [g for g in range(len(groups)) if groups[g][0]]
    block = not groups[-1][0] and sizes[-1] > 1   # the contiguous axis is kept
    inner = sizes[-1] if block else 1
    kept = [g for g in range(len(groups) - block) if not groups[g][0]]
    nblk = -(-inner // REDUCE_BLOCK)
    out_tasks = (nout // max(inner, 1)) * nblk if block else nout
    parallel = nin >= GC_PAR_MIN
    # chunks of the largest reduced group when the outputs alone make too few tasks
    nc, split = 1, (max(red, key=lambda g: sizes[g]) if red else None)
    if parallel and split is not None and out_tasks < REDUCE_TASKS:
        accbytes = np.dtype("float32" if acc_t == "float" else "float64").itemsize
        nc = min(-(-REDUCE_TASKS // out_tasks), sizes[split],
                 nin // (out_tasks * REDUCE_MIN_TASK),
                 REDUCE_PARTIALS // (nout * accbytes * (2 if op == "logsumexp" else 1)))
        nc = max(nc, 1)
    parallel = parallel and out_tasks * nc > 1
    return ReduceTasks(sizes, red, kept, out_st, block, inner, nblk, out_tasks, nout, nin,
                       nin // max(nout, 1), nc, split, parallel)


def reduce_kernel(k: Kernel, store) -> tuple[list[str], list[str], list[str]]:
    """(parameters, body, arguments) of the C function computing reduction kernel ``k``;
    ``store(value, dtype)`` spells a conversion to a buffer's dtype (the renderer's)."""
    return _ReduceWriter(k, store).kernel()


class _ReduceWriter:
    """Writes one reduction kernel (see the module docstring).  Names in the C: ``t`` the task,
    ``o`` an output, ``c`` a chunk, ``r<g>`` the index along reduced group g, ``X<j>`` /
    ``row<j>`` operand j at the task's / the row's first element, ``pa`` / ``ps`` the chunks'
    partials."""

    def __init__(self, k: Kernel, store):
        self.k, self.store = k, store
        node = k.node
        self.op = node.op
        # merged axes and what is read per element: the input buffer, or the operands of an
        # elementwise prologue (each with its own strides per group; lower.reduce_read)
        self.rd = rd = reduce_read(k)
        x = node.inputs[0]
        nout = int(np.prod(node.shape)) if node.shape else 1
        nin = int(np.prod(x.shape)) if x.shape else 1
        self.acc_t, self.init, self.combine = reduce_accumulator(self.op, x.dtype, node.dtype,
                                                                 nin // max(nout, 1))
        self.tasks = reduce_tasks(rd, node, self.op, self.acc_t)
        self.st = rd.strides             # st[j][g]: operand j's element stride along group g
        f = "f" if self.acc_t == "float" else ""
        self.mx, self.ex, self.lg = f"gc_max2{f}", f"gc_exp{f}", f"gc_log{f}"
        self.scale = f" / ({self.acc_t}){self.tasks.count}" if self.op == "mean" else ""
        self.nops = nops = len(rd.operands)
        folded = rd.expr is not None
        self.ptrs = [f"p{j}" for j in range(nops)] if folded else ["x"]
        self.Xs = [f"X{j}" for j in range(nops)] if folded else ["X"]
        self.rows = [f"row{j}" for j in range(nops)] if folded else ["row"]
        self.ats = [" + ".join(f"r{g} * {self.st[j][g]}L" for g in self.tasks.red
                               if self.st[j][g]) or "0" for j in range(nops)]
        self.bases = self._task_bases()
        self.value = _element_value(rd, self.acc_t, store)

    @staticmethod
    def fix(m: str) -> str:
        """``m`` with an infinite maximum replaced by 0 (exp(x - inf) would be NaN)."""
        return f"(isfinite({m}) ? {m} : ({m} != {m} ? {m} : 0))"

    def _task_bases(self) -> list[str]:
        """Per operand: the offset of the task's first element, from the kept groups' indices
        decoded from the output index (``o``, or ``ko`` and the block ``b``)."""
        T, st = self.tasks, self.st
        ko = "o" if not T.block else "ko"
        div = 1 if not T.block else T.inner
        kidx = []
        for g in T.kept:
            idx = f"{ko} / {T.out_st[g] // div}L" if T.out_st[g] // div > 1 else ko
            if g != T.kept[0]:
                idx = f"({idx}) % {T.sizes[g]}L"
            kidx.append((g, idx))
        bases = []
        for j in range(self.nops):
            terms = [f"({idx}) * {st[j][g]}L" for g, idx in kidx if st[j][g]]
            if T.block and st[j][-1]:
                terms.append(f"b * {REDUCE_BLOCK * st[j][-1]}L")
            bases.append(" + ".join(terms) or "0")
        return bases

    # -- loops over one task's reduced elements (chunk c of the split group) ---------------
    def bounds(self, g: int) -> tuple[str, str]:
        T = self.tasks
        return ("0", f"{T.sizes[g]}L") if g != T.split or T.nc == 1 else \
            (f"c * {T.sizes[g]}L / {T.nc}L", f"(c + 1) * {T.sizes[g]}L / {T.nc}L")

    def nest(self, stmts: list[str], simd: str = "") -> list[str]:
        red = self.tasks.red
        if not red:  # only size-1 axes reduced: one element, in a scope of its own
            return ["{"] + ["    " + s for s in stmts] + ["}"]
        lines = []
        for d, g in enumerate(red):
            lo, hi = self.bounds(g)
            if simd and d == len(red) - 1:
                lines.append("    " * d + simd)
            lines.append("    " * d + f"for (long r{g} = {lo}; r{g} < {hi}; r{g}++) {{")
        lines += ["    " * len(red) + s for s in stmts]
        lines += ["    " * d + "}" for d in range(len(red) - 1, -1, -1)]
        return lines

    def along(self, j: int, var: str) -> str:
        """Operand j's offset at ``var`` along the last group."""
        s = self.st[j][-1]
        return "0" if not s else var if s == 1 else f"{var} * {s}L"

    def lanes_nest(self, var: str, comb: str, load: str) -> list[str]:
        """``var`` combined (``comb`` of ``a`` and ``v``) over the task's elements, the
        contiguous last group in REDUCE_LANES interleaved accumulators (independent vector
        compares; one dependent max per element ran at scalar speed), merged in order."""
        T, acc_t = self.tasks, self.acc_t
        red = T.red
        if not red or red[-1] != len(T.sizes) - 1:
            return self.nest([f"{{ const {acc_t} a = {var}, v = {load}; {var} = {comb}; }}"])
        g, W = red[-1], REDUCE_LANES
        lo, hi = self.bounds(g)
        at_l = self.value([f"{self.Xs[j]}[{self.ats[j]} + {self.along(j, 'l')}]"
                           for j in range(self.nops)])
        inner = [f"long r{g} = {lo};",
                 f"for (; r{g} + {W}L <= {hi}; r{g} += {W}L) {{",
                 "    #pragma omp simd",
                 f"    for (long l = 0; l < {W}L; l++) {{ const {acc_t} a = L[l], "
                 f"v = {at_l}; L[l] = {comb}; }}",
                 "}",
                 f"for (; r{g} < {hi}; r{g}++) {{ const {acc_t} a = L[0], v = {load}; "
                 f"L[0] = {comb}; }}"]
        outer, red_outer = [], red[:-1]
        for d, h in enumerate(red_outer):
            lo2, hi2 = self.bounds(h)
            outer.append("    " * d + f"for (long r{h} = {lo2}; r{h} < {hi2}; r{h}++) {{")
        n = len(red_outer)
        lines = [f"{{ {acc_t} L[{W}];", f"for (long l = 0; l < {W}L; l++) L[l] = {var};"]
        lines += outer + ["    " * n + "{"] + ["    " * (n + 1) + s for s in inner]
        lines += ["    " * n + "}"] + ["    " * d + "}" for d in range(n - 1, -1, -1)]
        lines += [f"for (long l = 0; l < {W}L; l++) {{ const {acc_t} a = {var}, v = L[l]; "
                  f"{var} = {comb}; }} }}"]
        return lines

    # -- the kernel --------------------------------------------------------------------------
    def kernel(self) -> tuple[list[str], list[str], list[str]]:
        k, rd, T = self.k, self.rd, self.tasks
        node, x = k.node, k.node.inputs[0]
        if rd.expr is not None:
            params = [f"const {ctype(t.dtype)}* p{j}" for j, (t, _) in enumerate(rd.operands)]
            args = [pointer(sj, t.dtype) for t, sj in rd.operands]
        else:
            params, args = [f"const {ctype(x.dtype)}* x"], [pointer(k.srcs[0], x.dtype)]
        params.append(f"{ctype(node.dtype)}* out")
        args.append(pointer(k.dst, node.dtype, const=False))
        # the final value of output o (an expression of the accumulator type), stored and fed
        # to folded updates (a bias and its optimizer state): exactly once per output, by the
        # task that owns it or by the combining loop
        if k.members:
            emit = _member_writer(k, params, args, self.store)
        else:
            emit = lambda value: [f"out[o] = ({ctype(node.dtype)})({value});"]  # noqa: E731
        part = T.nc > 1
        acc_t, nc, nout = self.acc_t, T.nc, T.nout
        body = []
        if part:
            body += [f"{acc_t} pa[{nc * nout}];"]
            body += [f"{acc_t} ps[{nc * nout}];"] if self.op == "logsumexp" else []
        if T.parallel:
            body.append("#pragma omp parallel for schedule(static) num_threads(gc_threads())")
        body.append(f"for (long t = 0; t < {T.out_tasks * nc}L; t++) {{")
        task = [f"const long c = t % {nc}L;"] if part else []
        tid = f"t / {nc}L" if part else "t"
        task += (self._block_task(tid, emit, part) if T.block
                 else self._output_task(tid, emit, part))
        body += ["    " + s for s in task] + ["}"]
        if part:
            body += self._combine_chunks(emit)
        return params, body, args

    def _decl(self, j: int, name: str, value: str) -> str:
        return f"const {ctype(self.rd.operands[j][0].dtype)}* {name} = {value};"

    def _output_task(self, tid: str, emit, part: bool) -> list[str]:
        """A task owning one output (the reduced axis is the contiguous one): a scalar
        accumulator."""
        nops, acc_t, nout = self.nops, self.acc_t, self.tasks.nout
        task = [f"const long o = {tid};"]
        task += [self._decl(j, self.Xs[j], f"{self.ptrs[j]} + {self.bases[j]}")
                 for j in range(nops)]
        load = self.value([f"{self.Xs[j]}[{self.ats[j]}]" for j in range(nops)])
        if self.op == "logsumexp":
            task += [f"{acc_t} m = -INFINITY, s = 0;"]
            task += self.lanes_nest("m", f"{self.mx}(a, v)", load)
            task += [f"const {acc_t} mf = {self.fix('m')};"]
            task += self.nest([f"s += {self.ex}({load} - mf);"],
                              "#pragma omp simd reduction(+:s)")
            task += ([f"pa[c * {nout}L + o] = m; ps[c * {nout}L + o] = s;"] if part
                     else emit(f"{self.lg}(s) + mf"))
            return task
        task.append(f"{acc_t} r = {self.init};")
        if self.op in ("sum", "mean"):  # a SIMD reduction: vector adds, several partial sums
            task += self.nest([f"r += {load};"], "#pragma omp simd reduction(+:r)")
        else:
            task += self.lanes_nest("r", self.combine, load)
        task += [f"pa[c * {nout}L + o] = r;"] if part else emit(f"r{self.scale}")
        return task

    def _block_task(self, tid: str, emit, part: bool) -> list[str]:
        """A task owning up to REDUCE_BLOCK neighbouring outputs along the kept contiguous axis
        (a bias gradient's column sum): stack arrays walked row by row, vectorized across the
        block."""
        T, nops, acc_t, B = self.tasks, self.nops, self.acc_t, REDUCE_BLOCK
        inner, nout = T.inner, T.nout
        task = [f"const long b = {tid} % {T.nblk}L, ko = {tid} / {T.nblk}L;" if T.nblk > 1 else
                f"const long b = 0, ko = {tid};",
                f"const long n = {inner}L - b * {B}L < {B}L ? {inner}L - b * {B}L : {B}L;",
                f"const long o0 = ko * {inner}L + b * {B}L;"]
        task += [self._decl(j, self.Xs[j], f"{self.ptrs[j]} + {self.bases[j]}")
                 for j in range(nops)]
        row = " ".join(self._decl(j, self.rows[j], f"{self.Xs[j]} + {self.ats[j]}")
                       for j in range(nops))
        load = self.value([f"{self.rows[j]}[{self.along(j, 'i')}]" for j in range(nops)])
        lanes = lambda s: ["#pragma omp simd", f"for (long i = 0; i < n; i++) {s}"]  # noqa
        if self.op == "logsumexp":
            task += [f"{acc_t} M[{B}], MF[{B}], S[{B}];",
                     "for (long i = 0; i < n; i++) { M[i] = -INFINITY; S[i] = 0; }"]
            task += self.nest([row] + lanes(f"M[i] = {self.mx}(M[i], {load});"))
            task += [f"for (long i = 0; i < n; i++) MF[i] = {self.fix('M[i]')};"]
            task += self.nest([row] + lanes(f"S[i] += {self.ex}({load} - MF[i]);"))
            fin = (f"{{ pa[c * {nout}L + o0 + i] = M[i]; ps[c * {nout}L + o0 + i] = S[i]; }}"
                   if part else None)
            final = f"{self.lg}(S[i]) + MF[i]"
        else:
            task += [f"{acc_t} A[{B}];", f"for (long i = 0; i < n; i++) A[i] = {self.init};"]
            task += self.nest([row] + lanes(f"{{ const {acc_t} a = A[i], v = {load}; "
                                            f"A[i] = {self.combine}; }}"))
            fin = f"pa[c * {nout}L + o0 + i] = A[i];" if part else None
            final = f"A[i]{self.scale}"
        if part:
            return task + [f"for (long i = 0; i < n; i++) {fin}"]
        task += ["for (long i = 0; i < n; i++) {", "    const long o = o0 + i;"]
        return task + ["    " + s for s in emit(final)] + ["}"]

    def _combine_chunks(self, emit) -> list[str]:
        """The chunks' partials, combined in chunk order (the same for any thread count)."""
        acc_t, nc, nout = self.acc_t, self.tasks.nc, self.tasks.nout
        fix, mx, ex = self.fix, self.mx, self.ex
        if self.op == "logsumexp":  # chunk c summed exp(x - fix(m_c)): rescaled to the overall max
            comb = [f"{acc_t} m = pa[o], s = 0;",
                    f"for (long c = 1; c < {nc}L; c++) m = {mx}(m, pa[c * {nout}L + o]);",
                    f"const {acc_t} mf = {fix('m')};",
                    f"for (long c = 0; c < {nc}L; c++) {{",
                    f"    const {acc_t} mc = pa[c * {nout}L + o], sc = ps[c * {nout}L + o];",
                    # an all -inf chunk adds nothing (0 * exp(-mf) may be 0 * inf)
                    f"    if (sc != 0) s += sc * {ex}({fix('mc')} - mf);",
                    "}"]
            comb += emit(f"{self.lg}(s) + mf")
        else:
            comb = [f"{acc_t} a = pa[o];",
                    f"for (long c = 1; c < {nc}L; c++) {{ const {acc_t} v = "
                    f"pa[c * {nout}L + o]; a = {self.combine}; }}"]
            comb += emit(f"a{self.scale}")
        return [f"for (long o = 0; o < {nout}L; o++) {{"] + ["    " + s for s in comb] + ["}"]


def _element_value(rd: ReduceRead, acc_t: str, store):
    """A function of the C lvalues of operand j's element giving the element's value as
    the reduction's accumulator type: the input's element, or the prologue's expression
    computed as an elementwise kernel computes it and converted to the folded node's dtype
    first (the value its buffer held), in a statement expression (its CSE temporaries)."""
    if rd.expr is None:
        return lambda subs: f"(({acc_t}){subs[0]})"
    plan = FusedPlan(rd.operands, [(rd.node, None)],
                     [(rd.expr, [("in", j) for j in range(len(rd.operands))])])
    mdt, mct = compute_type([rd.node.dtype] + [t.dtype for t, _ in rd.operands])

    def value(subs: list[str]) -> str:
        stmts, values = render_plan(plan, [f"(({mct}){a})" for a in subs], mdt, mct,
                                    store, local="pe")  # r0...: loop indices
        return f"({{ {' '.join(stmts)} ({acc_t})({values[0]}); }})"
    return value


def _member_writer(k: Kernel, params: list, args: list, store):
    """For a reduction whose output also feeds in-place updates: a function of the final
    value of output ``o`` giving the statements that store it and every member's value
    computed from it (operands: same shape as the output, or one element).  Members never
    write the reduction's input (lower.folds.fold_updates), so outputs may finish in any
    order.  Appends the members' operands and outputs to ``params`` / ``args``."""
    plan = fused_plan(k)
    mdt, mct = compute_type([n.dtype for n, _ in plan.outputs] +
                            [t.dtype for t, _ in plan.operands])
    loads = [f"(({mct})in{j}[{'o' if int(np.prod(t.shape)) > 1 else '0'}])"
             for j, (t, _) in enumerate(plan.operands)]
    params += [f"const {ctype(t.dtype)}* in{j}" for j, (t, _) in enumerate(plan.operands)]
    params += [f"{ctype(n.dtype)}* up{j}" for j, (n, _) in enumerate(plan.outputs[1:])]
    args += [pointer(st, t.dtype) for t, st in plan.operands]
    args += [pointer(st, n.dtype, const=False) for n, st in plan.outputs[1:]]
    names = ["out"] + [f"up{j}" for j in range(len(plan.outputs) - 1)]

    def emit(value: str) -> list[str]:
        stmts, values = render_plan(plan, loads, mdt, mct, store, acc=f"(({mct})({value}))")
        return ["{"] + ["    " + st for st in stmts] + \
            [f"    {name}[o] = {values[i]};" for i, name in enumerate(names)] + ["}"]
    return emit
