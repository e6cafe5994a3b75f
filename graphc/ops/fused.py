"""Fused ops created by the backend passes (never by users): ``dense``, ``bmm``.

They have numpy references like every op, so the interpreter can run a fused graph and the
tests can check each fusion against the unfused graph.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import format_shape, is_float
from ..symbolic import numpy_function
from .registry import OpDef, broadcast_shapes, register


def _gemm_dtypes(op, a, b, out_dtype):
    """The GEMM kernels read both operands and write the result in one float type (fuse_dense
    and bmm are built from float matmuls only; a graph file could say otherwise)."""
    if a.dtype != b.dtype or not is_float(a.dtype) or out_dtype != a.dtype:
        raise ShapeError(f"{op}: operands and result must share one float dtype, got "
                         f"{a.dtype}, {b.dtype} -> {out_dtype}")


def _dense_infer(inputs, attrs):
    a, b = inputs[0], inputs[1]
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"dense: needs 2-D operands, got {format_shape(a.shape)} and "
                         f"{format_shape(b.shape)}")
    _gemm_dtypes("dense", a, b, attrs["dtype"])
    m, k1 = (a.shape[1], a.shape[0]) if attrs["trans_a"] else a.shape
    k2, n = (b.shape[1], b.shape[0]) if attrs["trans_b"] else b.shape
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(f"dense: inner dimensions differ: {format_shape(a.shape)} and "
                         f"{format_shape(b.shape)}")
    for e in inputs[2:]:  # epilogue inputs are read broadcast to the result
        if len(e.shape) > 2 or broadcast_shapes("dense", (m, n), e.shape) != (m, n):
            raise ShapeError(f"dense: epilogue input {format_shape(e.shape)} does not "
                             f"broadcast to the result {format_shape((m, n))}")
    return (m, n), attrs["dtype"]


def _dense_ref(node, a, b, *extras):
    acc = np.matmul(a.T if node.attrs["trans_a"] else a, b.T if node.attrs["trans_b"] else b)
    fn = numpy_function(node.attrs["expr"], 1 + len(extras))
    # broadcast views: numpy's printing of And/Or does not broadcast operands itself
    extras = [np.broadcast_to(e, acc.shape) for e in extras]
    with np.errstate(all="ignore"):
        out = np.asarray(fn(acc, *extras))
    return np.broadcast_to(out, acc.shape).astype(node.dtype)


def _no_grad(node, g):
    raise NotImplementedError("fused ops are created after differentiation; differentiate the "
                              "unfused graph")


register(OpDef("dense", _dense_infer, _dense_ref, _no_grad, kind="matmul",
               doc="epilogue(op(a) @ op(b), extras...): matmul with fused elementwise epilogue "
                   "(A0 = accumulator, A1.. = extras broadcast to the output)"))


def _bmm_infer(inputs, attrs):
    a, b = inputs
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"bmm: needs operands of rank >= 2, got {format_shape(a.shape)} and "
                         f"{format_shape(b.shape)}")
    m, k1 = a.shape[-2:][::-1] if attrs["trans_a"] else a.shape[-2:]
    k2, n = b.shape[-2:][::-1] if attrs["trans_b"] else b.shape[-2:]
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(f"bmm: inner dimensions differ: {format_shape(a.shape)} and "
                         f"{format_shape(b.shape)}")
    _gemm_dtypes("bmm", a, b, a.dtype)
    batch = broadcast_shapes("bmm", tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    return tuple(batch) + (m, n), a.dtype


def _bmm_ref(node, a, b):
    return np.matmul(np.swapaxes(a, -1, -2) if node.attrs["trans_a"] else a,
                     np.swapaxes(b, -1, -2) if node.attrs["trans_b"] else b)


register(OpDef("bmm", _bmm_infer, _bmm_ref, _no_grad, kind="matmul",
               doc="batched matmul op(a) @ op(b), op transposing the last two axes when "
                   "trans_a / trans_b (a transpose folded into the GEMM's operand order)"))
