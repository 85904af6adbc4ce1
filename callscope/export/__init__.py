"""``callscope export TRACE``: the call graph of a trace as Graphviz DOT or SVG.

:func:`build_graph` reads events (through callscope/trace and
callscope/model) into a :class:`CallGraph`; :func:`to_dot` writes DOT text
directly; :func:`render_svg` runs a Graphviz ``dot`` (or ``graphviz-pure``).
"""

from .dot import quote, to_dot
from .graph import CallGraph, GraphImport, GraphTask, build_graph
from .render import RenderError, find_renderer, render_svg

__all__ = [
    "CallGraph", "GraphImport", "GraphTask", "RenderError", "build_graph", "find_renderer", "quote",
    "render_svg", "to_dot",
]
