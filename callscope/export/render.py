"""Rendering DOT text: Graphviz's ``dot`` when it is on PATH, else
``graphviz-pure`` (a runtime dependency of callscope: a self-contained
``dot`` built for Python wheels, so a plain ``pip install`` renders SVG and
PNG). Which output formats a renderer has is asked of the renderer itself
(``-T?``-style: it lists them when given one it does not know), so PDF works
with a system Graphviz and is refused, in one line, with graphviz-pure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from typing import Optional

INSTALL_HINT = ("no Graphviz to render with: install Graphviz ('apt-get install graphviz', "
                "'brew install graphviz') or 'pip install graphviz-pure', or write DOT with --format dot")

# formats callscope writes itself; every other comes from a renderer
OWN_FORMATS = ("dot", "gv", "perfetto")
GRAPH_FORMATS = ("svg", "png", "pdf", "jpg", "jpeg")  # the rendered formats callscope offers
EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".pdf": "pdf",
              ".jpg": "jpg", ".jpeg": "jpeg", ".json": "perfetto"}


class RenderError(Exception):
    """One line: why the output could not be made."""


def find_renderer(fmt: str = "svg") -> Optional[list[str]]:
    """The command that reads DOT on stdin and writes ``fmt``, or None (no
    renderer at all). A renderer that lacks ``fmt`` still comes back: see
    :func:`renderer_formats`."""
    dot = shutil.which("dot")
    if dot:
        return [dot, f"-T{fmt}"]
    gp = shutil.which("graphviz-pure")
    if gp is None:  # installed in this venv but the venv not activated
        cand = os.path.join(os.path.dirname(sys.executable), "graphviz-pure")
        gp = cand if os.access(cand, os.X_OK) else None
    if gp:
        return [gp, f"-T{fmt}"]
    return None


@lru_cache(maxsize=8)
def renderer_formats(binary: str) -> frozenset:
    """The output formats ``binary`` (a dot) knows: it lists them when asked
    for one it does not ("Format: ... not recognized. Use one of: ...")."""
    try:
        p = subprocess.run([binary, "-Tcallscope-no-such-format"], input=b"digraph{}", capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    m = re.search(rb"Use one of:(.*)", p.stderr)
    if not m:
        return frozenset()
    return frozenset(w.split(b":")[0].decode() for w in m.group(1).split())


def format_for(path: Optional[str], fmt: Optional[str]) -> str:
    """The output format: ``fmt`` when given, else from ``path``'s extension,
    else dot. Raises RenderError (one line) for an extension callscope does
    not write."""
    if fmt:
        return fmt
    if not path or path == "-":
        return "dot"
    ext = os.path.splitext(path)[1].lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    known = ", ".join(sorted(EXTENSIONS))
    what = f"extension {ext!r}" if ext else "no extension"
    raise RenderError(f"{os.path.basename(path)}: {what} is not an output format callscope writes "
                      f"({known}); give --format")


def check_renderable(fmt: str) -> list[str]:
    """The renderer command for ``fmt``, or RenderError (one line)."""
    cmd = find_renderer(fmt)
    if cmd is None:
        raise RenderError(INSTALL_HINT)
    have = renderer_formats(cmd[0])
    if have and fmt not in have:
        name = os.path.basename(cmd[0])
        offer = ", ".join(f for f in GRAPH_FORMATS if f in have)
        hint = " (a system Graphviz writes it: apt-get install graphviz)" if name == "graphviz-pure" else ""
        raise RenderError(f"{name} cannot write {fmt}{hint}; it writes {offer}, or use --format dot")
    return cmd


def render(dot_text: str, fmt: str, renderer: Optional[list[str]] = None,
           timeout: Optional[float] = None) -> bytes:
    """``dot_text`` rendered as ``fmt`` (svg, png, pdf, ...)."""
    cmd = renderer or check_renderable(fmt)
    try:
        p = subprocess.run(cmd, input=dot_text.encode(), capture_output=True, timeout=timeout)
    except OSError as e:
        raise RenderError(f"could not run {cmd[0]}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"{os.path.basename(cmd[0])} took longer than {timeout:g}s") from None
    if p.returncode != 0 or not p.stdout:
        lines = [ln for ln in p.stderr.decode(errors="replace").strip().splitlines()
                 if not ln.lower().startswith("warning")] or ["(no message)"]
        raise RenderError(f"{os.path.basename(cmd[0])} failed (exit {p.returncode}): {lines[0][:200]}")
    return p.stdout


def render_svg(dot_text: str, renderer: Optional[list[str]] = None, timeout: Optional[float] = None) -> bytes:
    if renderer is None and find_renderer("svg") is None:
        raise RenderError(INSTALL_HINT)
    return render(dot_text, "svg", renderer, timeout)
