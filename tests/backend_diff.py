"""Differential testing of a compiled backend against the numpy reference, for every case of
``op_cases`` (every op of the registry), forward and backward.

Compiling is the slow part of a compiled backend, so the cases are packed into a few programs:
one compiled function computes many cases' outputs and gradients.  Parameters that cases create
(prelu's alpha, batch norm's statistics) are reset between the reference run and the backend run
and compared afterwards too.
"""
from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.ir import toposort
from op_cases import CASES, placeholders_for, sample_inputs


def _case_graph(case, shapes, dtype, seed, tag):
    arrays = sample_inputs(case, shapes, dtype, seed)
    phs = placeholders_for(arrays)
    for i, p in enumerate(phs):
        p.name = f"{tag}_in{i}"
    out = case.build(*phs)
    outputs, labels = [out], [f"{case.id} {shapes} forward"]
    idx = case.grad_inputs()
    if idx and gc.ir.is_float(out.dtype):
        w = np.random.default_rng(seed + 1).standard_normal(
            tuple(1 if d is None else d for d in out.shape))
        cost = gc.sum(out * gc.constant(w, dtype=out.dtype))
        grads = gc.grad(cost, [phs[i] for i in idx])
        outputs += grads
        labels += [f"{case.id} {shapes} d/d input {i}" for i in idx]
    return phs, arrays, outputs, labels


def build_program(cases_and_shapes, dtype="float32", seed=0):
    inputs, feeds, outputs, labels = [], [], [], []
    for n, (case, shapes) in enumerate(cases_and_shapes):
        phs, arrays, outs, labs = _case_graph(case, shapes, dtype, seed, f"c{n}")
        inputs += phs
        feeds += arrays
        outputs += outs
        labels += labs
    return inputs, feeds, outputs, labels


def compare_backend(backend, cases_and_shapes, dtype="float32", seed=0, chunk=40):
    """Run the packed programs on numpy and on ``backend``; return a list of mismatch strings."""
    problems = []
    rtol, atol = (2e-4, 2e-5) if dtype == "float32" else (1e-8, 1e-10)
    for start in range(0, len(cases_and_shapes), chunk):
        part = cases_and_shapes[start:start + chunk]
        inputs, feeds, outputs, labels = build_program(part, dtype, seed)
        params = [n for n in toposort(outputs) if n.op == "parameter"]
        before = [p.value for p in params]
        ref = gc.compile(inputs, outputs, backend="numpy")(*feeds)
        ref_params = [p.value for p in params]
        for p, v in zip(params, before):
            p.value = v
        got = gc.compile(inputs, outputs, backend=backend)(*feeds)
        got_params = [p.value for p in params]
        for lab, r, g in zip(labels, ref, got):
            if r.shape != g.shape or r.dtype != g.dtype:
                problems.append(f"{lab}: shape/dtype {g.shape} {g.dtype} vs {r.shape} {r.dtype}")
                continue
            if r.dtype == bool:
                if not np.array_equal(r, g):
                    problems.append(f"{lab}: boolean values differ")
                continue
            r64, g64 = r.astype(np.float64), g.astype(np.float64)
            scale = np.max(np.abs(r64)) if r64.size else 0.0
            ok = np.allclose(g64, r64, rtol=rtol, atol=atol + rtol * scale, equal_nan=True)
            if not ok:
                err = np.max(np.abs(g64 - r64))
                problems.append(f"{lab}: max abs error {err:.3g} (scale {scale:.3g})")
        for p, r, g in zip(params, ref_params, got_params):
            if not np.allclose(g, r, rtol=rtol, atol=atol):
                problems.append(f"parameter {p.name} after the call differs")
    return problems


def all_cases(max_shapes=None):
    out = []
    for c in CASES:
        for shapes in list(c.shapes)[:max_shapes]:
            out.append((c, shapes))
    return out
