"""Exception types shared by every layer of graphc."""


class ShapeError(ValueError):
    """An op was given incompatible shapes or dtypes (raised when the node is built)."""


class BackendUnavailable(RuntimeError):
    """A backend cannot run on this machine (no compiler, no GPU, a missing package)."""
