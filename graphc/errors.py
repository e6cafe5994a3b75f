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


class BackendUnavailable(RuntimeError):
    """A backend cannot run on this machine (no compiler, no GPU, a missing package)."""
