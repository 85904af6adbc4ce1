"""SVG from DOT text: Graphviz's ``dot`` when it is on PATH, else
``graphviz-pure`` (pip install graphviz-pure: a self-contained ``dot``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Optional

INSTALL_HINT = ("no Graphviz to render SVG: install Graphviz ('apt-get install graphviz', "
                "'brew install graphviz') or 'pip install graphviz-pure', or write DOT with --format dot")


class RenderError(Exception):
    """One line: why the SVG could not be made."""


def find_renderer() -> Optional[list[str]]:
    """The command that reads DOT on stdin and writes SVG, or None."""
    dot = shutil.which("dot")
    if dot:
        return [dot, "-Tsvg"]
    gp = shutil.which("graphviz-pure")
    if gp is None:  # installed in this venv but the venv not activated
        cand = os.path.join(os.path.dirname(sys.executable), "graphviz-pure")
        gp = cand if os.access(cand, os.X_OK) else None
    if gp:
        return [gp, "-Tsvg"]
    return None


def render_svg(dot_text: str, renderer: Optional[list[str]] = None, timeout: Optional[float] = None) -> bytes:
    cmd = renderer or find_renderer()
    if cmd is None:
        raise RenderError(INSTALL_HINT)
    try:
        p = subprocess.run(cmd, input=dot_text.encode(), capture_output=True, timeout=timeout)
    except OSError as e:
        raise RenderError(f"could not run {cmd[0]}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"{os.path.basename(cmd[0])} took longer than {timeout:g}s") from None
    if p.returncode != 0:
        err = (p.stderr.decode(errors="replace").strip().splitlines() or ["(no message)"])[0]
        raise RenderError(f"{os.path.basename(cmd[0])} failed (exit {p.returncode}): {err}")
    return p.stdout
