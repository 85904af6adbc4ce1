"""Errors the runtime raises."""


class Trap(Exception):
    """A wasm trap: the spec's ``trap()``. ``message`` is what the user sees,
    worded as wasmtime words the same trap so conformance tests match."""

    def __init__(self, message: str = "trap"):
        super().__init__(message)
        self.message = message


def trap_if(cond: bool, message: str = "trap") -> None:
    if cond:
        raise Trap(message)
