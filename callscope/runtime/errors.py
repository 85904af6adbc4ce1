"""Errors the runtime raises."""


class Trap(Exception):
    """A wasm trap: the spec's ``trap()``. ``message`` is what the user sees,
    worded as wasmtime words the same trap so conformance tests match."""

    def __init__(self, message: str = "trap"):
        super().__init__(message)
        self.message = message
        self.recorded = False  # whether an observer has been told (by the trapping thread)


def trap_if(cond: bool, message: str = "trap") -> None:
    if cond:
        raise Trap(message)


def one_line(message: str) -> str:
    """wasmtime's multi-line trap text as one line: the cause, then where."""
    text = message.strip()
    if "\n" not in text:
        return text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    cause = lines[-1]
    frames = [ln.split(" - ", 1)[1] for ln in lines if " - " in ln and ln[:1].isdigit()]
    return f"{cause} (in {frames[0]})" if frames else cause


def host_failure(name: str, e: BaseException, doing: str = "raised") -> Trap:
    """An exception in host code (WASI, wasi:http, an --import-module
    function) as a trap of the import call that ran it: the import's name and
    the exception in one line (issue 13). Never a traceback, never exit 1."""
    text = " ".join(str(e).split())
    if len(text) > 200:
        text = text[:199] + "…"
    if isinstance(e, MemoryError):
        text = text or "out of memory"
    return Trap(f"host import {name} {doing} {type(e).__name__}" + (f": {text}" if text else ""))
