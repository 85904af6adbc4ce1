"""Output files that never cost the user a file they had (issue 13).

An output is written as ``NAME.partial`` beside the file it will replace (the
file itself, or the one a symlink names) and renamed into place only once it
is complete. Until then whatever was at the path stays as it was; a run
that is killed leaves ``NAME.partial``, readable (a trace: as a truncated
one); a ``NAME.partial`` already there is never overwritten. Outputs that
are not regular files (``/dev/null``, a FIFO) are written directly. An
output naming one of the command's inputs is refused.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Sequence


PARTIAL_SUFFIX = ".partial"


class OutputError(Exception):
    """The trace cannot go where it was asked to (one line: say why)."""


def partial_path(path: Any) -> str:
    """Where a trace for ``path`` is written until it is complete: beside the
    file it will replace (``path`` itself, or what its symlink points to),
    named ``NAME.partial``. A run that is killed leaves it there, readable as
    a truncated trace."""
    return os.path.realpath(os.fspath(path)) + PARTIAL_SUFFIX


def check_output(path: Any, inputs: Sequence[Any] = ()) -> None:
    """Refuse an output ``path`` that is one of ``inputs`` (the guest, the
    trace being read), that we may not write, or whose partial file is
    already there (a killed run's: never overwritten). Raises OutputError."""
    p = os.fspath(path)
    for src in inputs:
        try:
            if src is not None and os.path.samefile(p, src):
                raise OutputError(f"{p}: is the input {os.fspath(src)}; refusing to overwrite it")
        except OSError:
            pass
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{p}: {e.strerror or e}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{p}: is a directory")
        if stat.S_ISREG(st.st_mode) and not os.access(p, os.W_OK):
            raise OutputError(f"{p}: not writable (it is kept as it is)")
    if st is None or stat.S_ISREG(st.st_mode):
        part = partial_path(p)
        if os.path.lexists(part):
            raise OutputError(f"{part} exists (a killed run's partial trace?): move or remove it first")
        d = os.path.dirname(part) or "."
        if not os.access(d, os.W_OK):
            raise OutputError(f"{p}: cannot write in {d}")


def write_replacing(path: Any, data: bytes, inputs: Sequence[Any] = ()) -> None:
    """Write ``data`` to ``path`` as described above. Raises OutputError or OSError."""
    check_output(path, inputs)
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(p, "wb") as f:
            f.write(data)
        return
    part = partial_path(p)
    try:
        with open(part, "xb") as f:
            f.write(data)
        if st is not None:
            os.chmod(part, stat.S_IMODE(st.st_mode))
        os.replace(part, os.path.realpath(p))
    except BaseException:
        try:
            os.unlink(part)
        except OSError:
            pass
        raise
