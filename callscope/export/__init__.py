"""``callscope export TRACE``: the call graph of a trace as Graphviz DOT,
SVG, PNG or PDF, or its timeline as Chrome trace-event JSON (Perfetto).

:func:`export_view` is the one entry point (the CLI and the replay app's
export key use it). Underneath: :func:`build_graph` reads events (through
callscope/trace and callscope/model) into a :class:`CallGraph` under a
:class:`Selection`; :func:`to_dot` builds DOT with the ``graphviz`` package;
:func:`render` runs a Graphviz ``dot`` (or ``graphviz-pure``);
:func:`to_perfetto` writes the timeline.
"""

from .api import FORMATS, ExportError, export_bytes, export_view
from .dot import quote, text, to_dot
from .graph import CallGraph, GraphImport, GraphTask, Selection, SelectionError, build_graph, fold
from .perfetto import to_perfetto
from .render import RenderError, find_renderer, render, render_svg

__all__ = [
    "CallGraph", "ExportError", "FORMATS", "GraphImport", "GraphTask", "RenderError", "Selection",
    "SelectionError", "build_graph", "export_bytes", "export_view", "find_renderer", "fold", "quote", "render",
    "render_svg", "text", "to_dot", "to_perfetto",
]
