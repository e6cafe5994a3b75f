"""Python operator overloads on ``Tensor`` (``+ - * / ** @``, unary ``-``, ``.T``)."""
from __future__ import annotations

from ..ir import Tensor
from . import elementwise as E
from .core import matmul, transpose


def _install() -> None:
    def binary(fn, reflected=False):
        if reflected:
            return lambda self, other: fn(other, self)
        return lambda self, other: fn(self, other)

    for name, fn in (("add", E.add), ("sub", E.sub), ("mul", E.mul), ("truediv", E.div),
                     ("pow", E.pow), ("matmul", matmul)):
        setattr(Tensor, f"__{name}__", binary(fn))
        setattr(Tensor, f"__r{name}__", binary(fn, reflected=True))
    Tensor.__neg__ = lambda self: E.neg(self)
    Tensor.__pos__ = lambda self: self
    Tensor.__abs__ = lambda self: E.abs(self)
    Tensor.__gt__ = lambda self, other: E.greater(self, other)
    Tensor.__lt__ = lambda self, other: E.less(self, other)
    Tensor.T = property(lambda self: transpose(self))


_install()
