"""graphc: a symbolic computational-graph compiler for training neural networks.

Build a static graph of tensor ops, differentiate it symbol-to-symbol (``gc.grad``), and
compile forward + backward + updates into one function (``gc.compile``) for numpy, C, CUDA or
OpenCL.
"""
from .errors import AxisError, BackendUnavailable, KernelLaunchError, ShapeError
from .ir import Tensor
from .ops import operators as _operators  # noqa: F401  (installs + - * / @ on Tensor)
from .ops.core import (as_tensor, broadcast_like, constant, expand_dims, max, mean, matmul,
                       ones_like, parameter, placeholder, reshape, size_of, squeeze,
                       stop_gradient, sum, transpose, zeros_like)
from .ops.elementwise import (abs, add, cast, cos, div, elu, equal, exp, expm1, gelu, greater,
                              hard_tanh, leaky_relu, less, log, log1p, maximum, minimum, mish,
                              mul, neg, pow, prelu, relu, selu, sigmoid, silu, sin, softplus,
                              softsign, sqrt, square, step, sub, swish, tanh, where)
from .ops.nn import (batch_norm, binary_cross_entropy, binary_cross_entropy_with_logits,
                     cross_entropy, dropout, l1_penalty, l2_penalty, log_softmax, logsumexp,
                     maxout, mse, one_hot, softmax)
from .autodiff import grad
from .compile import compile
from .gradcheck import check_grad
from .explain import explain
from .runtime.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"


def __getattr__(name):
    # submodules with heavier or optional dependencies load on first use
    import importlib
    if name in ("nn", "optim", "data", "plot", "export", "cli"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
