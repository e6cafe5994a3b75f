"""Session 11: optimizer state flushed below the smallest normal number, a producer read twice
inside one fused group inlined, one-element operands read before the elementwise loop.

Why: Adam's first moment (and RMSProp's average, momentum buffers) of a unit whose gradient is
0 decays into the subnormal range and stays there; every instruction touching it then takes a
microcode assist on Intel cores (a 784-256-256-10 Adam epoch went 0.41 -> 0.70 -> 0.98 s over
three epochs).  The flush is where(|s| < tiny, 0, s): fused into the update kernel only when
the twice-read s inlines, and vectorized only when the constant 0 and tiny are not loaded inside
the ?: branch."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL, c_available
from graphc import optim

BACKENDS = ["numpy", C, OPENCL]
TINY32 = np.finfo(np.float32).tiny


def _subnormal(a) -> np.ndarray:
    a = np.abs(np.asarray(a))
    return (a > 0) & (a < np.finfo(a.dtype).tiny)


def _zero_grad_step(opt, backend, state_kind, start, steps, dtype="float32"):
    """A parameter whose gradient is 0 (its input is fed zeros), ``state_kind`` state preset to
    ``start``; the state after each of ``steps`` steps."""
    w = gc.parameter(np.ones(start.shape, dtype), name="w")
    x = gc.placeholder(start.shape, dtype, name="x")
    loss = gc.sum(w * x)
    ups = opt.updates([w], gc.grad(loss, [w]))
    state = opt.state(w, state_kind)
    state.value = start.astype(dtype)
    f = gc.compile([x], loss, ups, backend=backend)
    zeros = np.zeros(start.shape, dtype)
    out = []
    for _ in range(steps):
        f(zeros)
        out.append(state.value)
    return out, w


# values around the smallest normal float32 (1.18e-38), subnormals, and ordinary ones
START = np.array([5e-38, 2e-38, 1.3e-38, 1.2e-38, 1e-39, 1e-44, -3e-38, -1e-40, 1e-3, 0.0],
                 np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,kind,decay", [
    (lambda: optim.Adam(1e-3), "m", 0.9),
    (lambda: optim.Adam(1e-3, beta2=0.5), "v", 0.5),
    (lambda: optim.RMSProp(1e-3), "v", 0.9),
    (lambda: optim.SGD(0.1, momentum=0.9), "momentum", 0.9),
    (lambda: optim.SGD(0.1, momentum=0.9, nesterov=True), "momentum", 0.9),
])
def test_decaying_state_never_holds_subnormals(backend, make, kind, decay):
    trace, _ = _zero_grad_step(make(), backend, kind, START, steps=30)
    for s in trace:
        assert not _subnormal(s).any(), s
    # one decay step: torch's arithmetic where the result stays normal, 0 where it would be
    # subnormal (the flush drops nothing at or above the smallest normal number)
    expect = (START * np.float32(decay)).astype(np.float32)
    expect[np.abs(expect) < TINY32] = 0
    np.testing.assert_allclose(trace[0], expect, rtol=3e-7, atol=0)
    # a long run ends at exactly 0, not stuck a few subnormal ulps up (0.9 * 4 ulps rounds to
    # 4 ulps); the ordinary 1e-3 is still there
    np.testing.assert_array_equal(trace[-1][:8], 0)
    assert abs(trace[-1][8]) > 1e-3 * decay ** 31


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_state_flushes_at_float64s_smallest_normal(backend):
    tiny64 = np.finfo(np.float64).tiny
    start = np.array([2.3e-308, 3e-308, 1e-310, 1e-30], np.float64)
    trace, _ = _zero_grad_step(optim.Adam(1e-3), backend, "m", start, steps=1, dtype="float64")
    got = trace[0]
    np.testing.assert_array_equal(got[:1], [0.0])           # 2.07e-308 < tiny: flushed
    assert got[1] == pytest.approx(0.9 * 3e-308, rel=1e-15) and got[1] >= tiny64
    assert got[2] == 0.0 and got[3] == pytest.approx(9e-31, rel=1e-15)


@pytest.mark.parametrize("backend", ["numpy", C])
@pytest.mark.parametrize("make,kind", [
    (lambda: optim.Adam(1e-3, eps=0.0), "m"),
    (lambda: optim.Adam(1e-3, eps=1e-13), "m"),
    (lambda: optim.RMSProp(1e-3, eps=0.0), "v"),
])
def test_no_flush_when_eps_is_too_small_to_hide_it(backend, make, kind):
    """With eps ~ 0, m / sqrt(v) of subnormal states is a real quotient (torch computes it):
    Adam and RMSProp keep them below FLUSH_MIN_EPS."""
    assert optim.FLUSH_MIN_EPS == 1e-12
    start = np.array([1e-39, 2e-39], np.float32)
    trace, _ = _zero_grad_step(make(), backend, kind, start, steps=1)
    assert _subnormal(trace[0]).all(), trace[0]


@pytest.mark.parametrize("backend", ["numpy", C])
def test_adam_with_subnormal_state_matches_torch(backend):
    """Tiny gradients (1e-20: g^2 is subnormal) and subnormal preset moments: the flushed
    state differs from torch.optim.Adam's by less than the smallest normal number, and the
    parameters agree to float32 rounding."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 5)).astype(np.float32)
    X = (rng.normal(size=(4, 6)) * 1e-20).astype(np.float32)
    m0 = np.where(rng.random((6, 5)) < 0.5, 1e-39, 3e-3).astype(np.float32)
    v0 = np.where(rng.random((6, 5)) < 0.5, 1e-40, 2e-5).astype(np.float32)

    w = gc.parameter(w0, name="w")
    x = gc.placeholder((4, 6), name="x")
    loss = gc.sum(gc.tanh(x @ w))
    opt = optim.Adam(1e-2)
    f = gc.compile([x], loss, opt.updates([w], gc.grad(loss, [w])), backend=backend)
    opt.state(w, "m").value, opt.state(w, "v").value = m0, v0

    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=1e-2)
    tw.grad = torch.zeros_like(tw)
    topt.step()  # creates the state (a zero step); then overwrite it to start equal
    with torch.no_grad():
        tw.copy_(torch.from_numpy(w0))
    st = topt.state[tw]
    st["exp_avg"].copy_(torch.from_numpy(m0))
    st["exp_avg_sq"].copy_(torch.from_numpy(v0))
    st["step"].fill_(0)
    for _ in range(3):
        f(X)
        topt.zero_grad()
        torch.tanh(torch.from_numpy(X) @ tw).sum().backward()
        topt.step()
        for ours, theirs in ((opt.state(w, "m").value, st["exp_avg"]),
                             (opt.state(w, "v").value, st["exp_avg_sq"])):
            assert not _subnormal(ours).any()
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=TINY32)
        np.testing.assert_allclose(w.value, tw.detach().numpy(), rtol=1e-6, atol=1e-7)


# -- fusion: a producer read twice inside one group ------------------------------------------

def _kernel_count(f) -> int:
    return f.source.count("static void k") + f.source.count("static int k")


@pytest.mark.parametrize("backend", BACKENDS)
def test_twice_read_producer_fuses_and_keeps_ieee_values(backend):
    x = gc.placeholder((None, 7), name="x")
    y = gc.exp(x) * 2.0 - 1.0                     # read by abs (condition) and where (value)
    z = gc.where(gc.less(gc.abs(y), 0.5), 0.0, y)
    u = y * y / y                                  # read three times by one node: NaN at inf
    X = np.array([[0.0, -1.0, 3.0, np.inf, -np.inf, np.nan, -0.3]] * 3, np.float32)
    with np.errstate(all="ignore"):
        Y = np.exp(X) * np.float32(2) - np.float32(1)
        want = {"z": np.where(np.abs(Y) < 0.5, np.float32(0), Y), "u": Y * Y / Y}
    kernels = {}
    for outs in (["z"], ["u"], ["z", "u"]):
        f = gc.compile([x], [{"z": z, "u": u}[o] for o in outs], backend=backend)
        for o, got in zip(outs, f(X)):
            np.testing.assert_allclose(got, want[o], rtol=1e-6)
        if backend == "c":
            kernels[tuple(outs)] = _kernel_count(f)
    if backend == "c":
        # alone, each is one loop (exp, *, -, abs, less, where); together y is read by two
        # groups, so it is stored once and read by both (three kernels, as before)
        assert kernels == {("z",): 1, ("u",): 1, ("z", "u"): 3}, kernels


def test_producer_read_outside_the_group_is_still_materialized():
    """y feeds the fused z and is itself an output: computed once and stored, as before."""
    x = gc.placeholder((5,), name="x")
    y = gc.exp(x)
    z = gc.where(gc.less(y, 2.0), 0.0, y)
    f = gc.compile([x], [y, z], backend="numpy")
    X = np.linspace(-1, 2, 5).astype(np.float32)
    got_y, got_z = f(X)
    np.testing.assert_allclose(got_y, np.exp(X), rtol=1e-6)
    np.testing.assert_allclose(got_z, np.where(np.exp(X) < 2, 0, np.exp(X)), rtol=1e-6)


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_adam_update_is_one_kernel_per_parameter():
    """The flushed m and v and the parameter are written by one kernel (no kernel stores the
    unflushed moments)."""
    x = gc.placeholder((8, 5), name="x")
    w = gc.parameter(np.ones((5, 3), np.float32), name="w")
    loss = gc.sum(gc.relu(x @ w))
    f = gc.compile([x], loss, optim.Adam(1e-3).updates([w], gc.grad(loss, [w])), backend="c")
    src = f.source
    updates = [line for line in src.splitlines() if line.startswith("/* k")
               and "abs+less+where" in line]
    assert len(updates) == 1, updates
    # that kernel stores three arrays: m, v, w
    name = updates[0].split(":")[0][3:]
    body = src[src.index(f"static void {name}("):]
    body = body[:body.index("\n}\n")]
    assert body.count("out0[") == 1 and body.count("out2[") == 1 and "out3[" not in body


# -- one-element operands read before the loop ------------------------------------------------

@pytest.mark.skipif(not c_available(), reason="no C compiler")
@pytest.mark.parametrize("shape", [(1,), (3,), (40000,), (2, 1, 3)])
def test_scalar_operands_are_hoisted_and_values_unchanged(shape):
    x = gc.placeholder(shape, name="x")
    c = gc.parameter(np.array(0.25, np.float32), name="c")
    out = gc.where(gc.less(x, c), c * 2.0, x)
    f = gc.compile([x], out, backend="c")
    X = np.linspace(-1, 1, int(np.prod(shape))).astype(np.float32).reshape(shape)
    np.testing.assert_allclose(f(X), np.where(X < 0.25, 0.5, X), rtol=1e-6)
    assert "_0 = ((float)in" in f.source, f.source


@pytest.mark.skipif(not c_available(), reason="no C compiler")
def test_one_element_parameter_updated_in_place_reads_its_old_value():
    """A (1,) parameter updated by a loop of one element: the hoisted read happens before
    the store, as every load did before."""
    p = gc.parameter(np.array([3.0], np.float32), name="p")
    q = gc.parameter(np.array([1.0, 2.0], np.float32), name="q")
    f = gc.compile([], gc.sum(q), updates=[(p, p * 2.0 + 1.0), (q, q + p)], backend="c")
    f()
    np.testing.assert_array_equal(p.value, [7.0])
    np.testing.assert_array_equal(q.value, [4.0, 5.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_of_twice_read_nodes_stays_linear(backend):
    """y = y * y * 0.5 + y, 30 times: each level reads the one below three times.  Inlining
    every multi-read producer doubled the expression tree per level (16 levels took 10 s to
    compile on C, 30 would not finish): multi-read inlining stops at MAX_DUPLICATED_TREE."""
    from graphc import fusion
    from graphc.ir import toposort
    x = gc.placeholder((5,), name="x")
    y = x
    for _ in range(30):
        y = y * y * 0.5 + y
    fused = fusion.fuse_elementwise([y])
    sizes = [fusion._tree_size(n.attrs["expr"]) for n in toposort(fused) if n.op == "ew"]
    assert max(sizes) <= fusion.MAX_DUPLICATED_TREE, sizes
    X = np.linspace(-0.01, 0.01, 5).astype(np.float32)
    want = X.copy()
    for _ in range(30):
        want = want * want * np.float32(0.5) + want
    np.testing.assert_allclose(gc.compile([x], y, backend=backend)(X), want, rtol=1e-6)


def test_tree_size_counts_shared_subexpressions_per_use():
    import sympy as sp
    from graphc.fusion import _tree_size
    a = sp.Symbol("a")
    e = a
    for _ in range(40):
        e = sp.Add(sp.Mul(e, e, evaluate=False), e, evaluate=False)
    # size(n) = 3 * size(n - 1) + 2 (Add, Mul, and three copies of the level below)
    want = 1
    for _ in range(40):
        want = 3 * want + 2
    assert _tree_size(e) == want
