"""Exception types shared by every layer of graphc."""


class ShapeError(ValueError):
    """An op was given incompatible shapes or dtypes (raised when the node is built).

    The message ends with where the user built the node (``file:line`` of the innermost frame
    outside graphc), whichever op or rule raised it."""

    def __init__(self, message="", *args):
        message = str(message)
        if "(built at " not in message:
            from .ir import user_location  # late: ir does not import this module's users
            message = f"{message} (built at {user_location()})"
        super().__init__(message, *args)


class AxisError(ShapeError, IndexError):
    """An axis argument out of range for the tensor's rank: a ``ShapeError`` (so a
    ``ValueError``, as API.md says of build errors) that is also the ``IndexError`` PyTorch
    raises ("Dimension out of range"), as numpy's ``AxisError`` is both."""


class BackendUnavailable(RuntimeError):
    """A backend cannot run on this machine (no compiler, no GPU, a missing package)."""


class KernelLaunchError(RuntimeError):
    """A GPU backend's kernel launch failed on the device (CUDA or OpenCL): the message names
    the kernel, the graph node it computes, its grid and block and its arguments; the device
    runtime's own exception is chained as ``__cause__``."""
