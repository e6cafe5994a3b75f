"""Shared pytest setup: the tests directory on sys.path (for ``op_cases``), seeded RNGs, and
a ``backend`` fixture the backend suites can parametrize (``numpy`` by default)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def rng():
    """A fresh, seeded numpy generator per test (deterministic)."""
    return np.random.default_rng(1234)


@pytest.fixture
def backend():
    """The backend under test; backend suites override it with ``pytest.mark.parametrize``."""
    return "numpy"
