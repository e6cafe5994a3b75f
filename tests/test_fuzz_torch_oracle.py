"""Random graphs (tests/fuzz_torch_oracle.py) against PyTorch autograd as an independent oracle:
forward values, gc.grad of a scalar cost with respect to every input and parameter, and
Hessian-vector products, on backends "numpy" and "c" in float64 (rtol 1e-7) and on "c" in
float32 against torch float32.  The regression tests below are the discrepancies the fuzzer
found, minimized."""
import warnings

import numpy as np
import pytest
import torch

import graphc as gc
from fuzz_torch_oracle import build_case, compare, compare32, run_case, well_conditioned

# Each seed is a compile of its own (numpy and C, a few hundred ms of gcc apiece on a cold
# cache; batching seeds into one compile costs gcc as much), so the default run keeps a few
# representative seeds, the cheapest of each kind: 0 (first order, free batch dimension),
# 1 (Hessian-vector products, free batch), 4 (first order), 5 (third order), 8 (third order
# with a gradient penalty); float32: 101 (second order, batch norm), 102 (third order).  The
# rest of the first ten run with -m slow, as before.
FAST_SEEDS = [0, 1, 4, 5, 8]
FAST32_SEEDS = [101, 102]
SLOW_SEEDS = [2, 3, 6, 7, 9] + list(range(10, 400))
SLOW32_SEEDS = [100, 103] + list(range(400, 520))


def _check64(seed, backends=("numpy", "c")):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        case = build_case(seed)
        if not well_conditioned(case):  # the random graph blew up (torch's values past 1e6)
            return
        for backend in backends:
            problems = compare(case, run_case(case, backend))
            assert not problems, f"seed {seed} {backend}: {problems[:4]}\n{case.desc}"


def _check32(seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        case64 = build_case(seed)
        if not well_conditioned(case64, 1e4):
            return
        case32 = build_case(seed, "float32")
        if not well_conditioned(case32, 1e4):  # torch's float32 values overflow or are NaN
            return
        problems = compare32(case32, case64, run_case(case32, "c"))
    assert not problems, f"seed {seed} float32 c: {problems[:4]}\n{case32.desc}"


def test_fuzz_cases_are_nontrivial():
    cases = [build_case(s) for s in range(20)]
    assert sum(any(n.startswith("hvp") for n in c.names) for c in cases) >= 8
    assert sum(sum(n.startswith("grad") for n in c.names) >= 3 for c in cases) >= 10
    assert sum(well_conditioned(c) for c in cases) >= 18
    # gradients are not all zero: the cost reaches the leaves
    nonzero = sum(any(np.abs(e).max(initial=0) > 0 for n, e in zip(c.names, c.expected)
                      if n.startswith("grad")) for c in cases)
    assert nonzero >= 18


def test_fuzz_is_deterministic():
    a, b = build_case(5), build_case(5)
    assert a.desc == b.desc and a.names == b.names
    for x, y in zip(a.expected, b.expected):
        np.testing.assert_array_equal(x, y)
    c = build_case(5, "float32")
    assert c.desc == a.desc and all(e.dtype == np.float32 for e in c.expected)


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_fuzz_float64(seed):
    _check64(seed)


@pytest.mark.parametrize("seed", FAST32_SEEDS)
def test_fuzz_float32_c(seed):
    _check32(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_fuzz_float64_slow(seed):
    _check64(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW32_SEEDS)
def test_fuzz_float32_c_slow(seed):
    _check32(seed)


# -- regressions ------------------------------------------------------------------------------

def test_constant_of_a_numpy_float64_scalar_is_float64():
    # np.float64 is a subclass of Python's float, so gc.constant took it for a Python float
    # and rounded it to float32 (torch.tensor(np.float64(x)) is float64): a Hessian-vector
    # product with a 0-d vector v = rng.standard_normal(()) * scale was off in the 8th digit
    v = np.random.default_rng(0).standard_normal(()) * 0.5    # (a numpy scalar, not an array)
    assert isinstance(v, np.float64) and not isinstance(v, np.ndarray)
    c = gc.constant(v)
    assert c.dtype == torch.tensor(v).numpy().dtype == "float64"
    assert gc.compile([], c)() == v
    assert gc.constant(np.float32(0.1)).dtype == "float32"
    assert gc.constant(0.1).dtype == "float32"   # Python floats stay float32 (torch's default)


def test_batch_norm_third_order_matches_finite_differences():
    # the oracle's exception (fuzz_torch_oracle._t_batch_norm): with a gradient penalty in the
    # cost, Hessian-vector products are third derivatives, where torch 2.13's F.batch_norm
    # (training) is wrong (seed 1759 of an earlier generator: graphc -1.842, torch -1.660);
    # graphc's agree with finite differences of its own second derivative and with torch
    # differentiating the composite form
    rng = np.random.default_rng(3)
    xv, w, v = (rng.standard_normal((5, 3)) for _ in range(3))
    x = gc.placeholder((5, 3), dtype="float64")
    rm = gc.parameter(np.zeros(3), trainable=False)
    rv = gc.parameter(np.ones(3), trainable=False)
    y = gc.batch_norm(x, np.ones(3), np.zeros(3), rm, rv, training=True)
    g1 = gc.grad(gc.sum(gc.tanh(y) * gc.constant(w)), x)
    g2 = gc.grad(gc.sum(gc.square(g1)), x)                  # second order
    h = gc.grad(gc.sum(g2 * gc.constant(v)), x)             # third order
    for backend in ("numpy", "c"):
        f = gc.compile([x], [g2, h], backend=backend)
        eps = 1e-5
        fd = (f(xv + eps * v)[0] - f(xv - eps * v)[0]) / (2 * eps)
        got = f(xv)[1]
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)

    tx = torch.tensor(xv, requires_grad=True)
    mu = tx.mean(0)
    ty = (tx - mu) / torch.sqrt(((tx - mu) ** 2).mean(0) + 1e-5)
    tg1, = torch.autograd.grad((torch.tanh(ty) * torch.tensor(w)).sum(), tx, create_graph=True)
    tg2, = torch.autograd.grad((tg1 ** 2).sum(), tx, create_graph=True)
    th, = torch.autograd.grad((tg2 * torch.tensor(v)).sum(), tx)
    np.testing.assert_allclose(got, th.numpy(), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("lshape, fshape, yshape", [((2, None, 3), (2, 4, 3), (2, 3)),
                                                    ((None,), (5,), ())])
def test_cross_entropy_with_a_free_class_axis(lshape, fshape, yshape):
    # seed 2514: logits (N, C, d) whose class axis C is free (None) were reshaped to rows
    # (-1, None): ShapeError "at most one -1/None" at build time; torch takes any C
    rng = np.random.default_rng(1)
    x = gc.placeholder(lshape, dtype="float64")
    y = gc.placeholder(yshape, dtype="int64")
    xv = rng.standard_normal(fshape)
    yv = rng.integers(0, fshape[0 if len(fshape) == 1 else 1], yshape)
    for red in ("mean", "none"):
        loss = gc.cross_entropy(x, y, reduction=red)
        gx = gc.grad(gc.sum(gc.square(loss)), x)
        tx = torch.tensor(xv, requires_grad=True)
        tl = torch.nn.functional.cross_entropy(tx, torch.tensor(yv), reduction=red)
        tg, = torch.autograd.grad((tl * tl).sum(), tx)
        for backend in ("numpy", "c"):
            out = gc.compile([x, y], [loss, gx], backend=backend)(xv, yv)
            np.testing.assert_allclose(out[0], tl.detach().numpy(), rtol=1e-10)
            np.testing.assert_allclose(out[1], tg.numpy(), rtol=1e-10, atol=1e-14)
    with pytest.raises(gc.ShapeError, match="free class axis"):
        gc.cross_entropy(gc.placeholder((None, None, 3)), gc.placeholder((None, 3), dtype="int64"))


def test_pow_second_derivative_at_base_zero_with_a_tensor_exponent():
    # d/da of a^b was b a^(b-1), whose SymPy derivative (b-1) a^(b-1) / a is 0/0 at a = 0:
    # the Hessian of x^p (p a tensor) at x = 0 was NaN for p = 1, 2, 3 where torch gives 0, 2,
    # 0, and the mixed derivative NaN or -inf for p = 1 where torch gives 1.  (At b = 0 torch
    # itself gives NaN from its where-backward, 0 * inf in the unselected branch; graphc keeps
    # the exact 0 there, not compared.)
    av = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.7, 2.0])
    bv = np.array([1.0, 2.0, 3.0, 0.5, 1.5, -1.3, 0.0])
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (av, bv))
    tga, tgb = torch.autograd.grad((ta ** tb).sum(), [ta, tb], create_graph=True)
    t_aa, t_ab = torch.autograd.grad(tga.sum(), [ta, tb], create_graph=True)
    t_ba, t_bb = torch.autograd.grad(tgb.sum(), [ta, tb], retain_graph=True)
    t_aaa, = torch.autograd.grad(t_aa.sum(), ta)
    want = [t.detach().numpy() for t in (tga, tgb, t_aa, t_ab, t_ba, t_bb, t_aaa)]
    assert want[2][1] == 2.0 and want[3][0] == 1.0
    for backend in ("numpy", "c"):
        a = gc.placeholder((7,), dtype="float64")
        b = gc.placeholder((7,), dtype="float64")
        ga, gb = gc.grad(gc.sum(gc.pow(a, b)), [a, b])
        haa, hab = gc.grad(gc.sum(ga), [a, b])
        hba, hbb = gc.grad(gc.sum(gb), [a, b])
        haaa = gc.grad(gc.sum(haa), a)
        got = gc.compile([a, b], [ga, gb, haa, hab, hba, hbb, haaa], backend=backend)(av, bv)
        for g_, w in zip(got, want):
            # torch's NaNs at a = 0 in d/da of d/db are its where-backward's (0 * NaN in the
            # masked branch a^b log a); graphc differentiates the selected constant 0
            keep = ~np.isnan(w)
            np.testing.assert_allclose(g_[keep], w[keep], rtol=1e-12)
        np.testing.assert_array_equal(got[2][:3], [0.0, 2.0, 0.0])   # d2/da2 at a = 0
        np.testing.assert_array_equal(got[3][:3], [1.0, 0.0, 0.0])   # d2/dadb at a = 0


def test_cross_entropy_second_order_with_a_free_class_axis():
    # seed 12674: the Hessian-vector product through cross_entropy of logits (N, None) built
    # one_hot(labels, depth=None): TypeError at gc.grad (second order only)
    rng = np.random.default_rng(2)
    xv, v = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    yv = rng.integers(0, 5, 4)
    wv = np.linspace(0.5, 1.5, 4)
    tx, tw = torch.tensor(xv, requires_grad=True), torch.tensor(wv, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(yv), reduction="none")
    tgx, = torch.autograd.grad((tl * tw).sum(), tx, create_graph=True)
    want = [tgx.detach().numpy()] + [t.numpy() for t in torch.autograd.grad(
        (tgx * torch.tensor(v)).sum(), [tx, tw])]
    x = gc.placeholder((4, None), dtype="float64")
    y = gc.placeholder((4,), dtype="int64")
    w = gc.parameter(wv)
    gx = gc.grad(gc.sum(gc.cross_entropy(x, y, reduction="none") * w), x)
    hx, hw = gc.grad(gc.sum(gx * gc.constant(v)), [x, w])
    for backend in ("numpy", "c"):
        got = gc.compile([x, y], [gx, hx, hw], backend=backend)(xv, yv)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
