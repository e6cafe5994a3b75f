"""Review 11 (training on backend "c" against PyTorch: optimizers, batch norm, dropout, gc.nn
fit / predict / evaluate, feeding errors): regressions.

* T1 Adam kept one step counter per ``opt.updates(params, ...)`` call (per set of parameters)
  where ``torch.optim.Adam`` keeps one per parameter (``state[p]["step"]``): a parameter
  trained for a while by a step over [A, B], then by a step over [B] alone (A frozen), got
  the bias correction of a fresh counter (t = 1) on its warmed-up moments, a step about as
  large as lr where PyTorch's is much smaller.  Each parameter has its own counter now.
* T2 ``gc.nn.load`` of a model.json nested thousands deep (``[[[[...``) raised RecursionError
  from the JSON decoder, and one with an integer of 5000 digits a ValueError not naming the
  file; both are ValueErrors naming model.json now (hostile files raise ValueError).
* T3 implicit updates (batch norm's running statistics, dropout's counter) were not cast to
  their parameter's dtype as explicit ``updates`` are: ``batch_norm`` of float64 data with
  float32 running stats computed float64 statistics, and the C and OpenCL backends stored
  those doubles' bytes into the float32 buffers (running_mean [-1.07e8, 1.72, -1.6e-23]
  where numpy gave [0.45, 0.55, 0.65]).  ``gc.compile`` checks and casts them as it does the
  explicit ones.
* T4 ``Dense(k, "sigmoid")`` (or ``Activation("sigmoid")``) last with ``loss="cross_entropy"``
  trained and evaluated the cross-entropy of the pre-sigmoid values (the logits kept for the
  binary losses), neither PyTorch's ``cross_entropy(sigmoid(z), y)`` nor anything else: 0.992
  where PyTorch gives 1.056.  Only a final softmax / log-softmax hands its logits to
  cross-entropy now.
* T5 ``lr=0`` raised ValueError in every optimizer; ``torch.optim`` accepts it (only lr < 0 is
  invalid): the state still advances and the parameters stay put (a warm-up schedule's first
  value).  lr must be finite and >= 0 now.
* T6 ``dropout`` of an integer tensor in training cast the scale 1/(1-rate) to the integer
  type (1 for rate < 0.5, so kept units were not scaled; [0, 0, 10, ...] for 10s at rate 0.3,
  not 14.3): a ShapeError now, as softmax of an integer tensor (PyTorch raises too).
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C, OPENCL

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("backend", ["numpy", C])
def test_t1_adam_step_counter_is_per_parameter(backend):
    rng = np.random.default_rng(0)
    A0, B0 = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    A, B = gc.parameter(A0.copy(), name="A"), gc.parameter(B0.copy(), name="B")
    x = gc.placeholder((3,), name="x")
    J = gc.sum(gc.tanh(A * x) * B)
    opt = gc.optim.Adam(0.1)
    gA, gB = gc.grad(J, [A, B])
    both = gc.compile([x], J, opt.updates([A, B], [gA, gB]), backend=backend)
    only_b = gc.compile([x], J, opt.updates([B], [gB]), backend=backend)
    tA, tB = torch.tensor(A0, requires_grad=True), torch.tensor(B0, requires_grad=True)
    topt = torch.optim.Adam([tA, tB], 0.1)
    for s, step in enumerate([both] * 3 + [only_b] * 3 + [both] * 2):
        xv = rng.standard_normal(3).astype(np.float32)
        step(xv)
        topt.zero_grad(set_to_none=True)
        tA.requires_grad_(step is both)   # frozen: no gradient, PyTorch skips it
        (torch.tanh(tA * torch.tensor(xv)) * tB).sum().backward()
        topt.step()
        np.testing.assert_allclose(A.value, tA.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"A after step {s}")
        np.testing.assert_allclose(B.value, tB.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"B after step {s}")


@pytest.mark.parametrize("text", ["[" * 100000, '{"a": ' * 100000,
                                  '{"format": "graphc.nn.Sequential", "seed": ' + "9" * 5000 + "}"],
                         ids=["deep_array", "deep_object", "huge_int"])
def test_t2_load_rejects_deeply_nested_or_huge_json_with_value_error(tmp_path, text):
    m = gc.nn.Sequential([gc.nn.Dense(2)], input_dim=3)
    path = tmp_path / "m"
    m.save(path)
    (path / "model.json").write_text(text)
    with pytest.raises(ValueError, match="model.json: not valid JSON"):
        gc.nn.load(path)


@pytest.mark.parametrize("backend", ["numpy", C, OPENCL])
def test_t3_batch_norm_of_float64_data_updates_float32_running_stats(backend):
    x = gc.placeholder((None, 3), "float64", name="x")
    rm = gc.parameter(np.zeros(3, np.float32), name="rm", trainable=False)
    rv = gc.parameter(np.ones(3, np.float32), name="rv", trainable=False)
    f = gc.compile([x], gc.batch_norm(x, 1.0, 0.0, rm, rv, True), backend=backend)
    xv = np.arange(12.0).reshape(4, 3) ** 1.5
    out = f(xv)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, (xv - xv.mean(0)) / np.sqrt(xv.var(0) + 1e-5), rtol=1e-6)
    assert rm.value.dtype == np.float32 and rv.value.dtype == np.float32
    np.testing.assert_allclose(rm.value, 0.1 * xv.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rv.value, 0.9 + 0.1 * xv.var(0, ddof=1), rtol=1e-6)


@pytest.mark.parametrize("last", [lambda: [gc.nn.Dense(3, "sigmoid")],
                                  lambda: [gc.nn.Dense(3), gc.nn.Activation("sigmoid")]],
                         ids=["dense", "activation"])
def test_t4_cross_entropy_after_a_final_sigmoid_is_taken_on_its_output(last):
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    m = gc.nn.Sequential(last(), input_dim=4)
    W, b = (torch.tensor(w, requires_grad=True) for w in m.get_weights())

    def torch_loss():
        return F.cross_entropy(torch.sigmoid(torch.tensor(X) @ W + b), torch.tensor(y))
    ev = m.evaluate(X, y, loss="cross_entropy", backend="numpy")
    np.testing.assert_allclose(ev["loss"], torch_loss().item(), rtol=1e-5)
    hist = m.fit(X, y, loss="cross_entropy", optimizer=gc.optim.SGD(0.5), epochs=1,
                 batch_size=12, backend="numpy", progress=False)
    loss = torch_loss()
    loss.backward()
    np.testing.assert_allclose(hist["loss"][0], loss.item(), rtol=1e-5)
    with torch.no_grad():
        W -= 0.5 * W.grad
        b -= 0.5 * b.grad
    np.testing.assert_allclose(m.get_weights()[0], W.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.get_weights()[1], b.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", C])
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSProp"])
def test_t5_zero_learning_rate_is_accepted_and_keeps_parameters(backend, name):
    kw = {"SGD": dict(momentum=0.9, weight_decay=0.1), "Adam": {}, "RMSProp": {}}[name]
    tkw = {"SGD": kw, "Adam": {}, "RMSProp": dict(alpha=0.9)}[name]
    p0 = np.array([1.0, -2.0, 3.0], np.float32)
    p = gc.parameter(p0.copy(), name="p")
    opt = getattr(gc.optim, name)(0.0, **kw)
    ups = opt.updates([p], gc.grad(gc.sum(gc.tanh(p) * p), [p]))
    f = gc.compile([], gc.sum(p), ups, backend=backend)
    tp = torch.tensor(p0, requires_grad=True)
    topt = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam,
            "RMSProp": torch.optim.RMSprop}[name]([tp], 0.0, **tkw)
    for _ in range(3):
        f()
        topt.zero_grad()
        (torch.tanh(tp) * tp).sum().backward()
        topt.step()
    np.testing.assert_array_equal(p.value, p0)
    np.testing.assert_array_equal(tp.detach().numpy(), p0)
    state = {q.name: q.value for q, _ in ups if q is not p}
    want = {"SGD": {"p_momentum": "momentum_buffer"}, "Adam": {"p_m": "exp_avg", "p_v": "exp_avg_sq"},
            "RMSProp": {"p_v": "square_avg"}}[name]
    for ours, theirs in want.items():
        # (1 - beta2) is rounded from float32 beta2 here, from the double in PyTorch: 1.3e-5
        np.testing.assert_allclose(state[ours], topt.state[tp][theirs].numpy(), rtol=5e-5)
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        getattr(gc.optim, name)(-1e-3)


@pytest.mark.parametrize("training", [True, "placeholder"])
def test_t6_dropout_of_an_integer_tensor_is_refused(training):
    x = gc.placeholder((10,), "int32", name="x")
    flag = gc.placeholder((), "bool", name="tr") if training == "placeholder" else training
    with pytest.raises(gc.ShapeError, match="dropout: expects a float tensor, got int32"):
        gc.dropout(x, 0.3, flag, seed=1)
    assert gc.dropout(x, 0.3, False) is x      # the identity: nothing to scale
    assert gc.dropout(x, 0.0, True) is x


@pytest.mark.parametrize("make", [lambda: gc.optim.SGD(0.1), lambda: gc.optim.Adam(),
                                  lambda: gc.optim.RMSProp(0.01)])
def test_parameter_listed_twice_is_named(make):
    # was: "p_step is updated twice" (the optimizer state's name) from gc.compile
    W = gc.parameter(np.ones((2, 2), "float32"), name="W")
    g = gc.constant(np.ones((2, 2), "float32"))
    with pytest.raises(ValueError, match=r"parameter W is listed more than once"):
        make().updates([W, W], [g, g])

