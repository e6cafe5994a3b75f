"""``Program``: what a backend compiles — inputs, optimized outputs, and parameter updates."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ir import Tensor, check_int_range, format_shape


@dataclass
class Program:
    inputs: list[Tensor]                  # placeholders, in call order
    outputs: list[Tensor]                 # optimized output nodes
    updates: list[tuple[Tensor, Tensor]]  # (parameter, optimized new value)
    name: str = "step"
    meta: dict = field(default_factory=dict)

    @property
    def roots(self) -> list[Tensor]:
        return list(self.outputs) + [v for _, v in self.updates]


def check_feed(placeholder: Tensor, value) -> np.ndarray:
    """Validate and convert one fed value (API.md rules); ValueError names the placeholder."""
    want = np.dtype(placeholder.dtype)
    shape = placeholder.shape
    if (type(value) is np.ndarray and value.dtype == want and value.ndim == len(shape)
            and value.flags.c_contiguous
            and all(d is None or d == g for d, g in zip(shape, value.shape))):
        return value  # the common case, checked cheaply
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if want.kind == "f":
        if kind not in "fiub":
            raise ValueError(f"placeholder {placeholder.name!r}: expected {want.name} data, got "
                             f"{arr.dtype}")
    elif want.kind in "iu":
        if kind not in "iub":
            raise ValueError(f"placeholder {placeholder.name!r}: expected integer ({want.name}) "
                             f"data, got {arr.dtype}")
    elif want.kind == "b" and kind != "b":
        raise ValueError(f"placeholder {placeholder.name!r}: expected bool data, got {arr.dtype}")
    if arr.ndim != len(shape) or any(d is not None and d != g for d, g in zip(shape, arr.shape)):
        raise ValueError(f"placeholder {placeholder.name!r}: expected shape "
                         f"{format_shape(shape)}, got {format_shape(arr.shape)}")
    check_int_range(arr, want, f"placeholder {placeholder.name!r}")  # astype would wrap
    arr = arr.astype(want, copy=False)
    # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")
