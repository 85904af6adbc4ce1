"""One entry point for every export: the command line and the replay app's
export key both call :func:`export_view`."""

from __future__ import annotations

import os
import tempfile
from typing import Any, BinaryIO, Iterable, Iterator, Optional, Union

from .graph import Selection, SelectionError, build_graph
from .render import GRAPH_FORMATS, OWN_FORMATS, RenderError, check_renderable, format_for, render

FORMATS = ("dot", "svg", "png", "pdf", "perfetto")


class ExportError(Exception):
    """One line: why nothing was written."""


def resolve_format(path: Optional[str], fmt: Optional[str]) -> str:
    """The format ``path``/``fmt`` ask for, checked against what can be
    written here (a renderer for svg/png/pdf); ExportError otherwise."""
    try:
        fmt = format_for(path, fmt)
    except RenderError as e:
        raise ExportError(str(e)) from None
    fmt = "dot" if fmt == "gv" else fmt
    if fmt not in OWN_FORMATS and fmt not in GRAPH_FORMATS:
        raise ExportError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if fmt in GRAPH_FORMATS:
        try:
            check_renderable(fmt)
        except RenderError as e:
            raise ExportError(str(e)) from None
    return fmt


def _events(trace: Any, stop: Optional[int]):
    return trace.events(0, stop)


def export_chunks(trace: Any, selection: Optional[Selection] = None, fmt: str = "dot",
                  title: Optional[str] = None) -> Iterator[bytes]:
    """The bytes of ``trace`` (a TraceReader, or anything with
    ``events(start, stop)``) exported as ``fmt`` under ``selection``, in
    pieces: DOT a line at a time, so writing a big graph does not hold its
    whole text (and its bytes) at once (issue 13). The graph is built, and
    any ExportError raised, before the first piece."""
    sel = selection or Selection()
    stop = None if sel.at is None else sel.at + 1
    if fmt == "perfetto":
        from .perfetto import perfetto_chunks

        return perfetto_chunks(lambda: _events(trace, stop), title=title)
    try:
        g = build_graph(_events(trace, stop), selection=sel, title=title)
    except SelectionError as e:
        raise ExportError(str(e)) from None
    from .dot import dot_lines, to_dot

    if fmt in ("dot", "gv"):
        return (line.encode() for line in dot_lines(g))
    try:
        return iter((render(to_dot(g), fmt),))
    except RenderError as e:
        raise ExportError(str(e)) from None


def export_bytes(trace: Any, selection: Optional[Selection] = None, fmt: str = "dot",
                 title: Optional[str] = None) -> bytes:
    """The bytes of ``trace`` exported as ``fmt`` under ``selection``
    (:func:`export_chunks`, joined)."""
    return b"".join(export_chunks(trace, selection, fmt, title))


def write_atomically(path: str, data: Union[bytes, Iterable[bytes]]) -> None:
    """``data`` (bytes, or pieces of them) into ``path`` through a temporary
    file beside it, so a failed export never leaves a half-written (or
    emptied) file."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".callscope-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                f.writelines(data)
        try:
            os.chmod(tmp, 0o666 & ~_umask())
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def export_view(trace: Any, selection: Optional[Selection] = None, path: Optional[str] = None,
                format: Optional[str] = None, title: Optional[str] = None, *,
                keep: bool = True, stream: Optional[BinaryIO] = None) -> bytes:
    """Export ``trace`` (a path, or a TraceReader / anything with
    ``events(start, stop)``) under ``selection`` to ``path`` in ``format``
    (default: from ``path``'s extension, else dot). Returns the bytes (also
    written to ``path`` when given); with ``keep=False`` they are written
    (to ``path``, else to ``stream``) as they are made and b"" is returned.
    ExportError (one line) for bad input: an unreadable trace, a format
    nothing here writes, a selection naming what the trace lacks."""
    fmt = resolve_format(path, format)
    if isinstance(trace, (str, os.PathLike)):
        from ..trace.reader import TraceError, TraceReader

        try:
            reader = TraceReader(os.fspath(trace))
        except TraceError as e:
            raise ExportError(str(e)) from None
        with reader:
            try:
                return _export_to(reader, selection, fmt, title or os.path.basename(os.fspath(trace)),
                                  path, keep, stream)
            except TraceError as e:
                raise ExportError(str(e)) from None
    return _export_to(trace, selection, fmt, title, path, keep, stream)


def _export_to(trace: Any, selection: Optional[Selection], fmt: str, title: Optional[str],
               path: Optional[str], keep: bool, stream: Optional[BinaryIO]) -> bytes:
    chunks: Iterable[bytes] = export_chunks(trace, selection, fmt, title)
    data = b""
    if keep:
        data = b"".join(chunks)
        chunks = (data,)
    if path and path != "-":
        try:
            write_atomically(path, chunks)
        except OSError as e:
            raise ExportError(f"{path}: {e.strerror or e}") from None
    elif stream is not None:
        stream.writelines(chunks)
    return data
