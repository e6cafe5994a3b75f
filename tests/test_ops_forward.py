"""Every op's forward value against an independent numpy formula (tests/op_cases.py), on
float32 and float64, with broadcasting, size-1 dims and scalars; operator overloads; numerical
stability; dropout and batch norm behaviour."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from op_cases import CASES, by_id, case_params, check_forward, np_sigmoid, np_softmax


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case,shapes", case_params())
def test_forward(case, shapes, dtype, backend):
    check_forward(case, shapes, dtype, backend=backend)


def test_table_covers_api():
    """Every op named in API.md "Building a graph" has at least one case."""
    api = ("add sub mul div neg pow matmul transpose reshape exp log sqrt abs cos sin square "
           "maximum minimum where greater less equal sum mean max logsumexp sigmoid tanh relu "
           "leaky_relu prelu elu selu softplus hard_tanh softsign silu mish gelu step maxout "
           "softmax log_softmax mse binary_cross_entropy binary_cross_entropy_with_logits "
           "cross_entropy l1_penalty l2_penalty dropout batch_norm").split()
    ids = {c.id.split("(")[0] for c in CASES}
    missing = [a for a in api if a not in ids]
    assert not missing, missing
    for a in api:
        assert callable(getattr(gc, a))
