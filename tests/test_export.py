"""callscope export: the call graph as DOT (structure, escaping, a 10k-node
graph) and SVG through a Graphviz binary when one is installed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from callscope.export import build_graph, find_renderer, quote, render_svg, to_dot
from callscope.trace import Recorder, TraceReader

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_replay import MIS_N, misattribution_script, write_trace  # noqa: E402


@pytest.fixture
def trace(tmp_path):
    return write_trace(tmp_path / "mis.cstrace")


def graph_of(path, **kw):
    with TraceReader(path) as r:
        return build_graph(r.events(), **kw)


def node_ids(dot: str) -> set[str]:
    return set(re.findall(r'^\s+"([ti]\d+)" \[', dot, re.M))


def edges(dot: str) -> list[tuple[str, str, str]]:
    return re.findall(r'^\s+"([ti]\d+)" -> "([ti]\d+)"(.*);$', dot, re.M)


def test_dot_structure(trace):
    g = graph_of(trace)
    dot = to_dot(g)
    assert dot.startswith('digraph "callscope" {') and dot.rstrip().endswith("}")
    # nodes: the four tasks, one import
    assert node_ids(dot) == {"t1", "t2", "t3", "t4", f"i{MIS_N}"}
    # root export tasks labelled with their request label, the import with its name
    assert re.search(r'"t1" \[[^\n]*label="\\"GET /a\\"\\nroot export task 1', dot)
    assert re.search(r'"t2" \[[^\n]*label="\\"GET /b\\"', dot)
    assert re.search(rf'"i{MIS_N}" \[shape=note[^\n]*label="wasi:http/outgoing-handler.handle\\ncall 10', dot)
    # clusters per instance, the subtask in its own instance's cluster
    assert 'subgraph "cluster_inst_1" {' in dot and 'subgraph "cluster_inst_2" {' in dot
    cluster2 = dot.split('subgraph "cluster_inst_2" {', 1)[1].split("}", 1)[0]
    assert '"t3" [' in cluster2 and f'"i{MIS_N}" [' in cluster2 and 'label="instance 2 lib"' in cluster2
    es = edges(dot)
    pairs = [(a, b) for a, b, _ in es]
    assert ("t1", "t3") in pairs  # caller -> callee (subtask)
    assert ("t3", f"i{MIS_N}") in pairs  # task -> import
    # the misattributed import: red node, red edge from its task, dashed red edge to the true origin root
    assert re.search(rf'"i{MIS_N}" \[shape=note, color="#d62728"', dot)
    origin = [attrs for a, b, attrs in es if (a, b) == (f"i{MIS_N}", "t2")]
    assert len(origin) == 1
    assert "style=dashed" in origin[0] and 'color="#d62728"' in origin[0] and "true origin" in origin[0]
    assert 'MISATTRIBUTED: true origin task 2 \\"GET /b\\"' in dot
    # no other red edges
    assert sum('color="#d62728"' in attrs for _, _, attrs in es) == 2


def test_at_instance_and_only_findings(trace):
    before = to_dot(graph_of(trace, at=MIS_N - 1))
    assert f"i{MIS_N}" not in node_ids(before) and "(events 0..20)" in before
    inst2 = to_dot(graph_of(trace, instance=2))
    # instance 2's task and import, and the true origin of the misattributed import
    assert node_ids(inst2) == {"t3", f"i{MIS_N}", "t2"}
    only = to_dot(graph_of(trace, only_findings=True))
    # the import, its async call stack (3, 1), its true origin (2); not task 4
    assert node_ids(only) == {"t1", "t2", "t3", f"i{MIS_N}"}


def test_label_escaping(tmp_path):
    def script(rec):
        rec.instance_new(1, 'app "quoted"\\back', None)
        rec.task_new(1, 1, "handle", None, 1, 'GET /q?x="1"\\n\nnext', False)
        rec.import_call(1, 1, 'imp"name', [1], None, [], [], None)

    dot = to_dot(graph_of(write_trace(tmp_path / "q.cstrace", script)))
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert 'label="instance 1 app \\"quoted\\"\\\\back"' in dot
    assert '\\"GET /q?x=\\"1\\"\\\\n\\nnext\\"' in dot
    assert 'label="imp\\"name\\ncall 1' in dot
    # every quoted string is closed: no line has an odd number of unescaped quotes
    for line in dot.splitlines():
        assert len(re.findall(r'(?<!\\)"', line.replace("\\\\", ""))) % 2 == 0, line
    renderer = find_renderer()
    if renderer:
        assert b"<svg" in render_svg(dot, renderer)


def ten_thousand(rec):
    """2,500 requests, each: a root task, a subtask in another instance, two
    imports; every 50th import (100 of them) misattributed. 10,000 nodes."""
    rec.instance_new(1, "app", None)
    rec.instance_new(2, "lib", 1)
    call = 0
    for r in range(2500):
        root, sub = 2 * r + 1, 2 * r + 2
        rec.task_new(root, 1, "handle", None, root, f"GET /{r}", False)
        rec.taint_plant(root, f"t{r}")
        rec.task_new(sub, 2, "fetch", root, root, None, False)
        for _ in range(2):
            tok = f"t{r - 1}" if call % 50 == 49 and r else f"t{r}"
            rec.import_call(call, 2, "wasi:http/outgoing-handler.handle", [sub, root], None, [tok], [], None)
            rec.import_return(call, 0)
            call += 1
        rec.task_return(sub, 0)
        rec.task_exit(sub)
        rec.task_return(root, 0)
        rec.task_exit(root)


def test_ten_thousand_nodes(tmp_path):
    path = write_trace(tmp_path / "big.cstrace", ten_thousand)
    g = graph_of(path)
    dot = to_dot(g)
    assert len(g.tasks) + len(g.imports) == 10_000
    assert len(node_ids(dot)) == 10_000
    assert len(edges(dot)) == 2500 + 5000 + 100  # subtasks, imports, true-origin edges
    assert sum(1 for f in g.findings if f.lint == "misattributed") == 100


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "callscope", "export", *args],
                          capture_output=True, timeout=120)


def test_cli_dot_to_stdout_and_file(trace, tmp_path):
    p = _cli(trace)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b'digraph "callscope"')
    out = tmp_path / "g.dot"
    p = _cli(trace, "-o", str(out), "--only-findings")
    assert p.returncode == 0 and out.read_text().startswith("digraph")


def test_cli_bad_input(tmp_path):
    p = _cli(str(tmp_path / "missing.cstrace"))
    assert p.returncode == 2 and b"Traceback" not in p.stderr
    assert p.stderr.decode().strip().count("\n") == 0


def test_cli_svg_without_renderer(trace, tmp_path):
    # no dot, no graphviz-pure on PATH: one line saying how to install one
    import os

    env = dict(os.environ, PATH=str(tmp_path))
    p = subprocess.run([sys.executable, "-c",
                        "import sys; sys.executable = '/nonexistent/python';"
                        "from callscope.cli import main; sys.exit(main(sys.argv[1:]))",
                        "export", trace, "--format", "svg"], capture_output=True, env=env, timeout=60)
    assert p.returncode == 2
    err = p.stderr.decode().strip()
    assert err.count("\n") == 0 and "graphviz" in err.lower() and "install" in err


@pytest.mark.skipif(find_renderer() is None, reason="no Graphviz 'dot' or 'graphviz-pure' on PATH")
def test_cli_svg(trace, tmp_path):
    out = tmp_path / "g.svg"
    p = _cli(trace, "-o", str(out))  # format from the extension
    assert p.returncode == 0, p.stderr
    svg = out.read_text()
    assert "<svg" in svg and "GET /a" in svg and "outgoing&#45;handler" in svg
    assert "#d62728" in svg  # the misattributed import is red
