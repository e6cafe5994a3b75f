"""CI without a GPU, part 1: the CUDA dialect of generated kernel text compiles to sm_90 cubins.

Representative programs (MLP training steps with SGD / momentum / Adam-style updates written
with plain ops, every elementwise op of graphc.ops.elementwise.ELEMENTWISE forward and backward,
the softmax family and cross-entropy, batched matmul, dropout, batch norm, float64) are lowered
for concrete shapes, rendered by graphc.codegen.gpu and compiled with NVRTC (else nvcc) through
graphc.runtime.nvrtc.  A cubin (not PTX) is required, so resource errors (shared memory,
registers) surface here.  Skipped only when neither compiler exists.  The OpenCL twin of the
same text runs numerically in tests/test_gpu_backend.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.gpu import lower_gpu, render_gpu
from graphc.ops.elementwise import ELEMENTWISE
from graphc.runtime import nvrtc
from graphc.runtime.gpu_common import expand_includes

ELF_MAGIC = b"\x7fELF"

pytestmark = pytest.mark.skipif(not nvrtc.cubin_compiler_available(),
                                reason="neither NVRTC nor nvcc found")

def cuda_text(inputs, outputs, updates=None, shapes=None):
    """(kernel text with headers pasted, kernel names) of a program for concrete shapes."""
    f = gc.compile(inputs, outputs, updates=updates, backend="numpy")
    shapes = shapes or [tuple(3 if d is None else d for d in p.shape) for p in inputs]
    low = lower_gpu(f.program, shapes)
    text, launches = render_gpu(low)
    return expand_includes(text), sorted({launch.function for launch in launches})


def assert_cubin(text, names, name="graphc_test", backend=None):
    cubin = nvrtc.compile_cubin(text, name, arch="sm_90", backend=backend)
    assert cubin[:4] == ELF_MAGIC
    for n in names:
        assert n.encode() in cubin, f"kernel {n} missing from the cubin"
    return cubin


# -- programs -----------------------------------------------------------------------------------

def mlp_step(update: str, dtype="float32", sizes=(784, 33, 10)):
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, sizes[0]), dtype=dtype, name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    params, h = [], x
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = gc.parameter((rng.standard_normal((a, b)) * 0.05).astype(dtype), name=f"W{i}")
        bb = gc.parameter(np.zeros(b, dtype), name=f"b{i}")
        params += [W, bb]
        h = h @ W + bb
        if i < len(sizes) - 2:
            h = gc.relu(h)
    loss = gc.cross_entropy(h, y)
    grads = gc.grad(loss, params)
    lr = 0.05
    updates = []
    if update == "sgd":
        updates = [(p, p - lr * g) for p, g in zip(params, grads)]
    elif update == "momentum":
        for p, g in zip(params, grads):
            v = gc.parameter(np.zeros(p.shape, dtype), trainable=False, name=f"v_{p.name}")
            v_new = 0.9 * v + g
            updates += [(v, v_new), (p, p - lr * v_new)]
    elif update == "adam":
        t = gc.parameter(np.array(0.0, dtype), trainable=False, name="t")
        t_new = t + 1.0
        updates.append((t, t_new))
        for p, g in zip(params, grads):
            m = gc.parameter(np.zeros(p.shape, dtype), trainable=False, name=f"m_{p.name}")
            v = gc.parameter(np.zeros(p.shape, dtype), trainable=False, name=f"v_{p.name}")
            m_new = 0.9 * m + 0.1 * g
            v_new = 0.999 * v + 0.001 * g * g
            m_hat = m_new / (1.0 - 0.9 ** t_new)
            v_hat = v_new / (1.0 - 0.999 ** t_new)
            updates += [(m, m_new), (v, v_new), (p, p - 1e-3 * m_hat / (gc.sqrt(v_hat) + 1e-8))]
    return [x, y], loss, updates


@pytest.mark.parametrize("update", ["sgd", "momentum", "adam"])
def test_mlp_training_step_cubin(update):
    inputs, loss, updates = mlp_step(update)
    text, names = cuda_text(inputs, loss, updates, shapes=[(128, 784), (128,)])
    assert any("dense" in n for n in names)
    assert_cubin(text, names, f"mlp_{update}")


def test_mlp_training_step_float64_cubin():
    inputs, loss, updates = mlp_step("sgd", dtype="float64", sizes=(17, 9, 3))
    text, names = cuda_text(inputs, loss, updates, shapes=[(5, 17), (5,)])
    assert "double" in text
    assert_cubin(text, names, "mlp_f64")


def _elementwise_program():
    """Every op of ELEMENTWISE applied once (broadcasting shapes), with gradients."""
    a = gc.placeholder((None, 7), name="a")
    b = gc.placeholder((7,), name="b")
    pos = gc.exp(a) + 0.5
    alpha = gc.parameter(np.full(7, 0.2, np.float32), name="alpha")
    outs = []
    for name in ELEMENTWISE:
        fn = getattr(gc, name)
        if name in ("add", "sub", "mul", "div", "maximum", "minimum", "pow", "greater", "less",
                    "equal"):
            out = fn(pos if name == "pow" else a, b)
        elif name == "where":
            out = fn(gc.greater(a, b), a, b)
        elif name == "prelu":
            out = fn(a, alpha)
        elif name in ("log", "sqrt"):
            out = fn(pos)
        elif name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
            out = fn(gc.sigmoid(a) if name == "binary_cross_entropy" else a, gc.sigmoid(b))
        else:
            out = fn(a)
        outs.append(out)
    extra = [gc.leaky_relu(a, alpha=0.2), gc.elu(a, alpha=0.5), gc.gelu(a, approximate="tanh")]
    floats = [o for o in outs + extra if o.dtype == "float32"]
    cost = sum(gc.sum(o * (k + 1.0)) for k, o in enumerate(floats))
    grads = gc.grad(cost, [a, b, alpha])
    return [a, b], outs + extra + grads


def test_every_elementwise_op_cubin():
    inputs, outs = _elementwise_program()
    text, names = cuda_text(inputs, outs, shapes=[(17, 7), (7,)])
    for op in ("gc_sigmoidf", "gc_erff", "gc_tanhf"):
        assert op in text
    assert_cubin(text, names, "elementwise")


def test_softmax_family_and_cross_entropy_cubin():
    x = gc.placeholder((None, 10), name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    t = gc.placeholder((None, 5, 10), name="t")
    outs = [gc.softmax(x), gc.log_softmax(x), gc.logsumexp(x, axis=1),
            gc.softmax(t, axis=1), gc.log_softmax(t, axis=0), gc.logsumexp(t),
            gc.cross_entropy(x, y), gc.cross_entropy(x, y, reduction="none"),
            gc.max(t, axis=(0, 2)), gc.mean(t, axis=1), gc.sum(x, axis=0)]
    cost = sum(gc.sum(o * 1.5) for o in outs[:8])
    grads = gc.grad(cost, [x, t])
    text, names = cuda_text([x, y, t], outs + grads, shapes=[(33, 10), (33,), (3, 5, 10)])
    assert "GC_LOCAL" in text and "GC_BARRIER" in text
    assert_cubin(text, names, "softmax_family")


def test_cross_entropy_of_computed_labels_cubin():
    # computed labels: the kernel writes the status word the host reads before the updates
    x = gc.placeholder((None, 10), name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    W = gc.parameter(np.ones((10, 10), np.float32), name="W")
    loss = gc.cross_entropy(x @ W, y + 1)
    text, names = cuda_text([x, y], [loss], updates=[(W, W - 0.1 * gc.grad(loss, [W])[0])],
                            shapes=[(33, 10), (33,)])
    assert "status[0] = 1;" in text
    assert_cubin(text, names, "computed_labels")


def test_batched_matmul_cubin():
    a = gc.placeholder((None, 4, 17, 33), name="a")
    b = gc.placeholder((4, 33, 5), name="b")
    c = gc.matmul(a, b)
    grads = gc.grad(gc.sum(c * c), [a, b])
    text, names = cuda_text([a, b], [c] + grads, shapes=[(2, 4, 17, 33), (4, 33, 5)])
    assert "GC_GEMM_BATCH" in text
    assert_cubin(text, names, "batched_matmul")


def test_dropout_cubin():
    x = gc.placeholder((None, 33), name="x")
    h = gc.dropout(gc.relu(x), 0.3, training=True, seed=5)
    g = gc.grad(gc.sum(h * h), [x])
    text, names = cuda_text([x], [h] + g, shapes=[(17, 33)])
    assert "gc_uniform01" in text
    assert_cubin(text, names, "dropout")


def test_batch_norm_cubin():
    x = gc.placeholder((None, 6), name="x")
    gamma = gc.parameter(np.ones(6, np.float32), name="gamma")
    beta = gc.parameter(np.zeros(6, np.float32), name="beta")
    rm = gc.parameter(np.zeros(6, np.float32), name="rm", trainable=False)
    rv = gc.parameter(np.ones(6, np.float32), name="rv", trainable=False)
    h = gc.batch_norm(x, gamma, beta, rm, rv, training=True)
    cost = gc.sum(h * h)
    grads = gc.grad(cost, [x, gamma, beta])
    updates = [(gamma, gamma - 0.1 * grads[1]), (beta, beta - 0.1 * grads[2])]
    text, names = cuda_text([x], [h, grads[0]], updates, shapes=[(17, 6)])
    assert_cubin(text, names, "batch_norm")


def test_layout_reductions_and_int_programs_cubin():
    x = gc.placeholder((None, 3, 5), name="x")
    lab = gc.placeholder((None,), dtype="int64", name="lab")
    big = gc.placeholder((None, 7), name="big")
    outs = [gc.transpose(x, (2, 0, 1)), gc.reshape(gc.transpose(x), (-1,)),
            gc.sum(x, axis=(0, 2), keepdims=True), gc.max(x), gc.mean(x, axis=-1),
            gc.sum(lab), gc.greater(x, 0.0), x,
            gc.sum(big, axis=0), gc.max(big), gc.mean(big)]   # split (two-pass) reductions
    text, names = cuda_text([x, lab, big], outs, shapes=[(130, 3, 5), (130,), (9000, 7)])
    assert any(n.endswith("_part") for n in names)
    assert_cubin(text, names, "layout")


@pytest.mark.skipif(nvrtc.nvcc_path() is None, reason="nvcc not found")
def test_nvcc_compiles_the_same_text():
    inputs, loss, updates = mlp_step("momentum")
    text, names = cuda_text(inputs, loss, updates, shapes=[(32, 784), (32,)])
    assert_cubin(text, names, "mlp_nvcc", backend="nvcc")
