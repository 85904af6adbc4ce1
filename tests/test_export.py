"""callscope export: the call graph as DOT built with the graphviz package
(structure as Graphviz itself parses it, escaping and injection, a 10k-node
graph), rendered SVG/PNG (graphviz-pure is a runtime dependency), formats,
selection and folding."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from callscope.export import (
    ExportError, Selection, SelectionError, build_graph, export_view, find_renderer, quote, render, render_svg,
    to_dot,
)
from callscope.export.dot import RED
from callscope.trace import Recorder, TraceReader

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_replay import MIS_N, misattribution_script, write_trace  # noqa: E402


@pytest.fixture
def trace(tmp_path):
    return write_trace(tmp_path / "mis.cstrace")


def graph_of(path, **kw):
    with TraceReader(path) as r:
        return build_graph(r.events(), **kw)


class Parsed:
    """A DOT text as Graphviz parsed it (its json output): nodes by name with
    their attributes, clusters with their node names, edges."""

    def __init__(self, dot: str):
        j = json.loads(render(dot, "json"))
        objs = j.get("objects", [])
        by_id = {o["_gvid"]: o for o in objs}
        self.graph = j
        self.nodes = {o["name"]: o for o in objs if "nodes" not in o and "subgraphs" not in o}
        self.clusters = {o["name"]: {by_id[i]["name"] for i in o.get("nodes", ())} for o in objs if "nodes" in o}
        self.edges = [(by_id[e["tail"]]["name"], by_id[e["head"]]["name"], e) for e in j.get("edges", [])]

    def ids(self) -> set:
        return set(self.nodes) - {"legend"}

    def pairs(self) -> list:
        return [(a, b) for a, b, e in self.edges if e.get("style") != "invis"]


def node_ids(dot: str) -> set[str]:
    return set(re.findall(r'^\t+([ti]\d+) \[', dot, re.M))


def edges(dot: str) -> list[tuple[str, str, str]]:
    return re.findall(r'^\t+([ti]\d+) -> ([ti]\d+)(.*)$', dot, re.M)


def test_dot_structure(trace):
    g = graph_of(trace)
    dot = to_dot(g)
    assert dot.startswith("digraph callscope {") and dot.rstrip().endswith("}")
    p = Parsed(dot)
    # nodes: the four tasks, one import, the legend
    assert p.ids() == {"t1", "t2", "t3", "t4", f"i{MIS_N}"} and "legend" in p.nodes
    # root export tasks labelled with their request label, the import with its name
    assert p.nodes["t1"]["label"].startswith('"GET /a"\\nroot export task 1')
    assert p.nodes["t2"]["label"].startswith('"GET /b"')
    imp = p.nodes[f"i{MIS_N}"]
    assert imp["shape"] == "note" and imp["label"].startswith("wasi:http/outgoing-handler.handle  (call 10, event #21)")
    # the misattributed import: red, "attributed to X, caused by Y", its evidence
    assert imp["color"] == RED
    assert 'MISATTRIBUTED: attributed to task 1 "GET /a", caused by task 2 "GET /b"' in imp["label"]
    assert "evidence: taint 'tok-2' planted in task 2 (event #9)" in imp["label"]
    assert "evidence: lineage: an argument created under root task 2" in imp["label"]
    # one cluster per instance, the subtask in its own instance's cluster
    assert p.clusters == {"cluster_inst_1": {"t1", "t2", "t4"}, "cluster_inst_2": {"t3", f"i{MIS_N}"}}
    assert p.graph["objects"][1]["label"] == "instance 2 lib"
    pairs = p.pairs()
    assert ("t1", "t3") in pairs  # caller -> callee (subtask)
    assert ("t3", f"i{MIS_N}") in pairs  # task -> import
    origin = [e for a, b, e in p.edges if (a, b) == (f"i{MIS_N}", "t2")]
    assert len(origin) == 1
    assert origin[0]["style"] == "dashed" and origin[0]["color"] == RED and origin[0]["label"] == "true origin"
    assert sum(e.get("color") == RED for _, _, e in p.edges) == 2  # no other red edges
    # a legend that says what the colours mean
    legend = p.nodes["legend"]["label"]
    for words in ("root export task", "misattributed import", "true origin", "another finding", "folded"):
        assert words in legend
    # the same trace gives the same bytes
    assert to_dot(graph_of(trace)) == dot


def test_at_instance_and_only_findings(trace):
    before = to_dot(graph_of(trace, at=MIS_N - 1))
    assert f"i{MIS_N}" not in node_ids(before) and "(events 0..20)" in before
    inst2 = to_dot(graph_of(trace, instance=2))
    # instance 2's task and import, and the stack and true origin of the misattributed import
    assert node_ids(inst2) == {"t3", f"i{MIS_N}", "t2", "t1"}
    only = to_dot(graph_of(trace, only_findings=True))
    # the import, its async call stack (3, 1), its true origin (2); not task 4
    assert node_ids(only) == {"t1", "t2", "t3", f"i{MIS_N}"}


def test_label_escaping(tmp_path):
    def script(rec):
        rec.instance_new(1, 'app "quoted"\\back', None)
        rec.task_new(1, 1, "handle", None, 1, 'GET /q?x="1"\\n\nnext', False)
        rec.import_call(1, 1, 'imp"name', [1], None, [], [], None)

    dot = to_dot(graph_of(write_trace(tmp_path / "q.cstrace", script)))
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    p = Parsed(dot)
    # Graphviz reads back exactly the strings (backslashes literal, the line break dropped)
    assert p.graph["objects"][0]["label"] == 'instance 1 app "quoted"\\\\back'
    assert p.nodes["t1"]["label"].startswith('"GET /q?x="1"\\\\n next"\\nroot export task 1')
    (imp,) = [v for k, v in p.nodes.items() if k.startswith("i")]
    assert imp["label"].startswith('imp"name  (call 1')
    assert b"<svg" in render_svg(dot)


INJECT = [
    '"] ; evil [URL="javascript:alert(1)" label="pwned"] ; x [label="',
    'a"; node [shape=box URL="http://evil.example/"]; "b',
    '<<table><tr><td href="http://evil.example/">x</td></tr></table>>',
    "<script>alert(1)</script>",
    "\\\\\\",  # odd run of backslashes at the end
    "back\\",
    "}; digraph g { evil",
    "\x00\x1b[31mred\x07",
    "label\\N\\G\\E\\T\\H\\L\\l\\r",
]


def injection(rec):
    rec.instance_new(1, INJECT[1], None)
    for i, s in enumerate(INJECT):
        rec.task_new(i + 1, 1, s, None, i + 1, s, False)
        rec.taint_plant(i + 1, f"tok{i}")
        rec.task_start(i + 1)
    for i, s in enumerate(INJECT):
        rec.import_call(i, 1, s, [i + 1], None, [f"tok{(i + 1) % len(INJECT)}"], [], None)


def test_injected_dot_is_inert(tmp_path):
    """Trace strings that try to close their DOT string, add attributes
    (URL/href), nodes, HTML-like labels or script: Graphviz reads every one
    back as plain label text; the SVG has no link and no script."""
    g = graph_of(write_trace(tmp_path / "inj.cstrace", injection))
    assert sum(1 for f in g.findings if f.lint == "misattributed") == len(INJECT)
    dot = to_dot(g)
    p = Parsed(dot)
    want = {f"t{i + 1}" for i in range(len(INJECT))} | {f"i{n}" for n in (imp.n for imp in g.imports)}
    assert p.ids() == want  # no node the trace named
    ours = {"_gvid", "name", "label", "shape", "style", "fillcolor", "tooltip", "color", "fontcolor", "penwidth",
            "fontname", "fontsize", "peripheries", "_draw_", "_ldraw_", "height", "width", "pos", "xlabel",
            "_hdraw_", "_tdraw_", "_hldraw_", "_tldraw_"}
    for name, o in p.nodes.items():
        assert set(o) <= ours, (name, set(o) - ours)
        assert "URL" not in o and "href" not in o
    for _, _, e in p.edges:
        assert "URL" not in e and "href" not in e
    # each label holds its trace string as text
    for i, s in enumerate(INJECT):
        label = p.nodes[f"t{i + 1}"]["label"]
        assert "root export task" in label
    import xml.etree.ElementTree as ET

    svg = render(dot, "svg").decode()
    root = ET.fromstring(svg)  # well-formed XML
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        assert tag not in ("script", "foreignObject", "a") or (tag == "a" and not any(
            k.endswith("href") for k in el.attrib)), tag
        for k, v in el.attrib.items():
            assert not k.rsplit("}", 1)[-1].lower().startswith("on"), k  # no event handlers
            assert not k.endswith("href"), (k, v)
    texts = " ".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
    assert "<script>alert(1)</script>" in texts  # shown, as text
    assert 'URL="javascript:alert(1)"' in texts


def test_png_and_formats(trace, tmp_path):
    png = tmp_path / "g.png"
    export_view(trace, None, str(png))
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000
    # same trace, same bytes (DOT, SVG and PNG)
    for ext in ("dot", "svg", "png"):
        a, b = (export_view(trace, None, str(tmp_path / f"{k}.{ext}")) for k in "ab")
        assert a == b, ext
    with pytest.raises(ExportError, match="not an output format"):
        export_view(trace, None, str(tmp_path / "g.tiff"))
    assert not (tmp_path / "g.tiff").exists()


def test_selection(trace):
    assert node_ids(to_dot(graph_of(trace, selection=Selection(lints=("misattributed",))))) == \
        {"t1", "t2", "t3", f"i{MIS_N}"}
    # a lint with no findings here: nothing but the legend
    assert node_ids(to_dot(graph_of(trace, selection=Selection(lints=("long-backpressure",))))) == set()
    # --root by request label or id: its tasks, plus the true origin of its misattributed import
    assert node_ids(to_dot(graph_of(trace, selection=Selection(root="GET /a")))) == {"t1", "t3", f"i{MIS_N}", "t2"}
    assert node_ids(to_dot(graph_of(trace, selection=Selection(root="4")))) == {"t4"}
    # --root "GET /b": the import its request caused, made on another's stack
    assert node_ids(to_dot(graph_of(trace, selection=Selection(root="GET /b")))) == {"t2", "t1", "t3", f"i{MIS_N}"}
    # --around: the call, its stack and its true origin
    assert node_ids(to_dot(graph_of(trace, selection=Selection(around=10)))) == {"t1", "t3", "t2", f"i{MIS_N}"}
    for bad, msg in ((Selection(lints=("nope",)), "unknown lint"), (Selection(root="GET /zzz"), "no root export"),
                     (Selection(around=99), "no import call 99"),
                     (Selection(max_nodes=0), "--max-nodes")):
        with pytest.raises(SelectionError, match=msg):
            graph_of(trace, selection=bad)
    # an instance the trace (so far) does not have: an empty graph that says so (the replay app may ask)
    g = graph_of(trace, selection=Selection(instance=9))
    assert g.nodes == 0 and any("instance 9: no such component instance" in n for n in g.notes)


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
        rec.task_start(root)
        rec.task_new(sub, 2, "fetch", root, root, None, False)
        rec.task_start(sub)
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
    assert p.stdout.startswith(b"digraph callscope {")
    out = tmp_path / "g.dot"
    p = _cli(trace, "-o", str(out), "--only-findings")
    assert p.returncode == 0 and out.read_text().startswith("digraph")


def test_cli_bad_input(trace, tmp_path):
    for args, words in (([str(tmp_path / "missing.cstrace")], "missing"),
                        ([trace, "-o", str(tmp_path / "g.tiff")], "not an output format"),
                        ([trace, "-o", str(tmp_path / "g")], "no extension"),
                        ([trace, "--lint", "nope"], "unknown lint"),
                        ([trace, "--root", "GET /nope"], "no root export task"),
                        ([trace, "--around", "77"], "no import call 77"),
                        ([trace, "--at", "-1"], "--at"),
                        ([trace, "--format", "perfetto", "--lint", "misattributed"], "--at only")):
        p = _cli(*args)
        err = p.stderr.decode().strip()
        assert p.returncode == 2 and "Traceback" not in err and err.count("\n") == 0 and words in err, (args, err)
    assert not (tmp_path / "g.tiff").exists() and not (tmp_path / "g").exists()


def test_cli_without_renderer(trace, tmp_path):
    # no dot, no graphviz-pure on PATH or beside Python: one line saying how to install one
    env = dict(os.environ, PATH=str(tmp_path))
    for fmt in ("svg", "png"):
        p = subprocess.run([sys.executable, "-c",
                            "import sys; sys.executable = '/nonexistent/python';"
                            "from callscope.cli import main; sys.exit(main(sys.argv[1:]))",
                            "export", trace, "-o", str(tmp_path / f"g.{fmt}")], capture_output=True, env=env,
                           timeout=60)
        assert p.returncode == 2
        err = p.stderr.decode().strip()
        assert err.count("\n") == 0 and "graphviz" in err.lower() and "install" in err
        assert not (tmp_path / f"g.{fmt}").exists()


def test_cli_pdf_needs_a_renderer_that_has_it(trace, tmp_path):
    from callscope.export.render import renderer_formats

    p = _cli(trace, "-o", str(tmp_path / "g.pdf"))
    if "pdf" in renderer_formats(find_renderer("pdf")[0]):
        assert p.returncode == 0 and (tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    else:  # graphviz-pure: no PDF; one line, nothing written (never DOT in a .pdf)
        err = p.stderr.decode().strip()
        assert p.returncode == 2 and err.count("\n") == 0 and "cannot write pdf" in err
        assert not (tmp_path / "g.pdf").exists()


def test_cli_svg_png(trace, tmp_path):
    out = tmp_path / "g.svg"
    p = _cli(trace, "-o", str(out))  # format from the extension
    assert p.returncode == 0, p.stderr
    svg = out.read_text()
    assert "<svg" in svg and "GET /a" in svg and "outgoing&#45;handler" in svg
    assert "#d62728" in svg and "legend" in svg  # the misattributed import is red; a legend
    png = tmp_path / "g.png"
    p = _cli(trace, "-o", str(png))
    assert p.returncode == 0 and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    p = _cli(trace, "--format", "png")  # to standard output
    assert p.returncode == 0 and p.stdout == png.read_bytes()


def many_requests(rec):
    """200 requests of one shape (a root task, three imports, two of them the
    same import); requests 50, 51 and 120 each make one import carrying the
    previous request's taint token (misattributed)."""
    rec.instance_new(1, "app", None)
    call = 0
    for r in range(200):
        rec.task_new(r + 1, 1, "handle", None, r + 1, f"GET /{r}", False)
        rec.taint_plant(r + 1, f"tok-{r}")
        rec.task_start(r + 1)
        for name in ("types.fields", "types.fields", "client.send"):
            tok = f"tok-{r - 1}" if r in (50, 51, 120) and name == "client.send" else f"tok-{r}"
            rec.import_call(call, 1, name, [r + 1], None, [tok], [], None)
            rec.import_return(call, 0)
            call += 1
        rec.task_return(r + 1, 0)
        rec.task_exit(r + 1)


def test_max_nodes_folds_repeated_subtrees(tmp_path):
    path = write_trace(tmp_path / "many.cstrace", many_requests)
    full = graph_of(path)
    assert full.nodes == 800
    mis = sorted(i.call for i in full.imports if full.misattributed(i))
    assert len(mis) == 3
    g = graph_of(path, selection=Selection(max_nodes=60))
    assert g.nodes <= 60
    # nothing lost: the counts add up to every request and every import
    assert sum(t.count for t in g.tasks.values()) == 200
    assert sum(i.count for i in g.imports) == 600
    dot = to_dot(g)
    p = Parsed(dot)
    red = [o["label"] for o in p.nodes.values() if o.get("color") == RED]
    for c in mis:  # every misattributed import named, with its X and Y
        assert any(f"call {c}," in lb or re.search(rf"calls [^\\]*\b{c}\b", lb) for lb in red), c
    for r in (50, 51, 120):
        assert f"t{r + 1}" in p.nodes and f"t{r}" in p.nodes  # stack root and true origin stay
    assert any("x" in o["label"] and "requests of this shape" in o["label"] for o in p.nodes.values())
    assert "folded 800 nodes into" in p.graph["label"]
    # --lint misattributed --max-nodes: the three imports, their roots and origins
    g = graph_of(path, selection=Selection(lints=("misattributed",), max_nodes=60))
    assert sorted(i.call for i in g.imports) == mis and g.nodes == 3 + 5
