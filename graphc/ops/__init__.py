"""The op library: the registry plus the public constructors of every op."""
from . import core, elementwise, fused, nn  # noqa: F401  (registration happens on import)
from .registry import OpDef, all_ops, lookup, register  # noqa: F401
