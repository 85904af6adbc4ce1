"""check --junit and check --sarif: the files validate against their
schemas.

SARIF: no copy of the OASIS schema is vendored and none can be downloaded
here, so SARIF_SUBSET below is a JSON Schema written for this test from the
SARIF 2.1.0 specification's rules for the objects callscope emits (the
required properties, the enumerations, the types, and
``additionalProperties: false`` as the official schema has for these
objects, so a misspelt property fails); jsonschema checks the log against it.
JUnit has no normative schema; junit_errors checks the structure the
common JUnit XML schema (Ant/Jenkins/GitLab) defines: testsuites >
testsuite > testcase > failure/system-out/system-err, the required
attributes and their types, the counts consistent with the elements."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from callscope.export.ci import junit_xml, root_calls, sarif_log
from callscope.model import check_all
from callscope.trace import TraceReader

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_export import INJECT, injection, many_requests  # noqa: E402
from test_replay import misattribution_script, write_trace  # noqa: E402

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra (pip install -e '.[test]')")

_MSG = {"type": "object", "properties": {"text": {"type": "string"}, "id": {"type": "string"},
                                         "markdown": {"type": "string"}},
        "anyOf": [{"required": ["text"]}, {"required": ["id"]}], "additionalProperties": False}
_MULTI = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"},
                                                                  "markdown": {"type": "string"}},
          "additionalProperties": False}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
_ART_LOC = {"type": "object", "properties": {"uri": {"type": "string", "format": "uri-reference"},
                                             "uriBaseId": {"type": "string"}, "index": {"type": "integer"}},
            "additionalProperties": False}
SARIF_SUBSET = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {"type": "array", "items": {
            "type": "object",
            "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "additionalProperties": False, "properties": {
                    "driver": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "informationUri": {"type": "string", "format": "uri"},
                        "rules": {"type": "array", "uniqueItems": True, "items": {
                            "type": "object", "required": ["id"], "additionalProperties": False, "properties": {
                                "id": {"type": "string"}, "name": {"type": "string"},
                                "shortDescription": _MULTI, "fullDescription": _MULTI,
                                "defaultConfiguration": {"type": "object", "additionalProperties": False,
                                                         "properties": {"level": _LEVEL}}}}}}}}},
                "artifacts": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                        "properties": {"location": _ART_LOC}}},
                "invocations": {"type": "array", "items": {
                    "type": "object", "required": ["executionSuccessful"], "additionalProperties": False,
                    "properties": {"executionSuccessful": {"type": "boolean"}, "exitCode": {"type": "integer"}}}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["message"], "additionalProperties": False, "properties": {
                        "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1},
                        "level": _LEVEL, "message": _MSG,
                        "locations": {"type": "array", "items": {
                            "type": "object", "additionalProperties": False, "properties": {
                                "physicalLocation": {"type": "object", "additionalProperties": False,
                                                     "anyOf": [{"required": ["address"]},
                                                               {"required": ["artifactLocation"]}],
                                                     "properties": {"artifactLocation": _ART_LOC,
                                                                    "address": {"type": "object"}}},
                                "logicalLocations": {"type": "array", "items": {
                                    "type": "object", "additionalProperties": False, "properties": {
                                        "name": {"type": "string"}, "fullyQualifiedName": {"type": "string"},
                                        "kind": {"type": "string"}}}}}}},
                        "partialFingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
                        "properties": {"type": "object"}}}},
                "properties": {"type": "object"},
            },
            "additionalProperties": False,
        }},
    },
    "additionalProperties": False,
}


def sarif_errors(log: dict) -> list[str]:
    v = jsonschema.Draft7Validator(SARIF_SUBSET, format_checker=jsonschema.FormatChecker())
    errs = [f"{list(e.path)}: {e.message}" for e in v.iter_errors(log)]
    for run in log["runs"]:  # rules referenced by index are the rules named
        rules = run["tool"]["driver"].get("rules", [])
        for r in run.get("results", []):
            if "ruleIndex" in r and rules[r["ruleIndex"]]["id"] != r.get("ruleId"):
                errs.append(f"ruleIndex {r['ruleIndex']} is not rule {r.get('ruleId')}")
    return errs


def junit_errors(data: bytes) -> list[str]:
    errs: list[str] = []
    root = ET.fromstring(data)  # well-formed XML 1.0
    if root.tag != "testsuites":
        return [f"root element {root.tag}"]

    def num(el, attr, kind=int, required=True):
        v = el.get(attr)
        if v is None:
            if required:
                errs.append(f"{el.tag} without {attr}")
            return None
        try:
            x = kind(v)
        except ValueError:
            errs.append(f"{el.tag} {attr}={v!r} is not {kind.__name__}")
            return None
        if x < 0:
            errs.append(f"{el.tag} {attr}={v!r} < 0")
        return x

    total = fails = 0
    for ts in root:
        if ts.tag != "testsuite":
            errs.append(f"testsuites holds {ts.tag}")
            continue
        if not ts.get("name"):
            errs.append("testsuite without name")
        cases = [c for c in ts if c.tag == "testcase"]
        for c in ts:
            if c.tag not in ("testcase", "properties", "system-out", "system-err"):
                errs.append(f"testsuite holds {c.tag}")
        f_here = 0
        for c in cases:
            for a in ("name", "classname"):
                if not c.get(a):
                    errs.append(f"testcase without {a}")
            num(c, "time", float)
            for ch in c:
                if ch.tag not in ("failure", "error", "skipped", "system-out", "system-err"):
                    errs.append(f"testcase holds {ch.tag}")
                if ch.tag == "failure":
                    f_here += 1
                    if not ch.get("message") or not ch.get("type"):
                        errs.append("failure without message/type")
        if num(ts, "tests") != len(cases):
            errs.append("testsuite tests != its testcases")
        if num(ts, "failures") != f_here:
            errs.append(f"testsuite failures {ts.get('failures')} != {f_here} failure elements")
        num(ts, "errors")
        num(ts, "skipped", required=False)
        num(ts, "time", float)
        total += len(cases)
        fails += f_here
    if num(root, "tests", required=False) not in (None, total):
        errs.append("testsuites tests != the sum")
    if num(root, "failures", required=False) not in (None, fails):
        errs.append("testsuites failures != the sum")
    return errs


def reports(path):
    with TraceReader(str(path)) as r:
        evs = list(r.events())
    findings = check_all(evs)
    return findings, junit_xml(root_calls(evs), findings, "guest.wasm"), sarif_log(findings, "guest.wasm",
                                                                                     str(path), "0.1.0", 1)


def test_junit_and_sarif_shapes(tmp_path):
    findings, junit, sarif = reports(write_trace(tmp_path / "mis.cstrace", misattribution_script))
    assert junit_errors(junit) == [] and sarif_errors(sarif) == []
    root = ET.fromstring(junit)
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["GET /a (root task 1)", "GET /b (root task 2)", "GET /c (root task 4)"]
    (fail,) = cases[0].findall("failure")  # the import misattributed to GET /a
    assert fail.get("type") == "misattributed"
    assert "call 10" in fail.get("message") and "attributed to root task 1, caused by root task 2" in fail.get("message")
    assert not cases[1].findall("failure") and not cases[2].findall("failure")
    res = sarif["runs"][0]["results"]
    assert len(res) == len(findings) == 1
    assert res[0]["ruleId"] == "misattributed" and res[0]["level"] == "error"
    assert res[0]["properties"]["stack_root"] == 1 and res[0]["properties"]["origins"] == [2]
    assert res[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "guest.wasm"
    # a schema that catches mistakes: a wrong level or an unknown property fails
    bad = json.loads(json.dumps(sarif))
    bad["runs"][0]["results"][0]["level"] = "fatal"
    bad["runs"][0]["results"][0]["severity"] = "x"
    assert len(sarif_errors(bad)) == 2


@pytest.mark.parametrize("script", [injection, many_requests])
def test_more_findings(tmp_path, script):
    findings, junit, sarif = reports(write_trace(tmp_path / "t.cstrace", script))
    assert junit_errors(junit) == [] and sarif_errors(sarif) == []
    mis = [f for f in findings if f.lint == "misattributed"]
    assert len(ET.fromstring(junit).findall("testsuite/testcase/failure")) == len(mis) > 0
    assert len(sarif["runs"][0]["results"]) == len(findings)
    if script is injection:  # control characters cannot reach the XML; the strings still do
        text = junit.decode()
        assert "\x00" not in text and "\x1b" not in text
        names = [c.get("name") for c in ET.fromstring(junit).findall("testsuite/testcase")]
        assert any(INJECT[0] in n for n in names)


def test_check_cli_writes_both(tmp_path):
    junit, sarif = tmp_path / "j.xml", tmp_path / "s.sarif"
    p = subprocess.run([sys.executable, "-m", "callscope", "check", "-o", str(tmp_path / "demo.trace"),
                        "--junit", str(junit), "--sarif", str(sarif)], capture_output=True, timeout=300)
    assert p.returncode == 1, p.stderr  # the built-in demo misattributes
    assert junit_errors(junit.read_bytes()) == []
    log = json.loads(sarif.read_text())
    assert sarif_errors(log) == []
    assert log["runs"][0]["invocations"][0]["exitCode"] == 1
    assert any(r["ruleId"] == "misattributed" for r in log["runs"][0]["results"])
    # a report that cannot be written: one line, exit 2
    p = subprocess.run([sys.executable, "-m", "callscope", "check", "-o", str(tmp_path / "demo2.trace"),
                        "--junit", str(tmp_path / "no" / "such" / "dir.xml")], capture_output=True, timeout=300)
    err = p.stderr.decode().strip()
    assert p.returncode == 2 and err.count("\n") == 0 and "Traceback" not in err, err
