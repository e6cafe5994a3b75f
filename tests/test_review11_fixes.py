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
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from backends import C

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
