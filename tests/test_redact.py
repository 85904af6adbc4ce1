"""Secrets are redacted in the argv a trace keeps (issue 13)."""

from __future__ import annotations

from callscope.cli import main
from callscope.redact import redact_argv
from callscope.trace import TraceReader


def test_redact_argv():
    argv = ["callscope", "run", "g.wasm", "--request", "GET / Authorization:Bearer%20s3cret x-a:1 cookie:sid=9",
            "--request=POST /x Proxy-Authorization:Basic%20abc", "--upstream", "https://bob:hunter2@up.test:8080/p?q=1",
            "--upstream=http://tok@h/", "--invoke", "f(\"authorization:keep-this-is-not-a-request\")"]
    out = redact_argv(argv)
    text = " ".join(out)
    for secret in ("s3cret", "sid=9", "abc", "bob", "hunter2", "tok@"):
        assert secret not in text, text
    assert out[4] == "GET / Authorization:<redacted> x-a:1 cookie:<redacted>"
    assert out[5] == "--request=POST /x Proxy-Authorization:<redacted>"
    assert out[7] == "https://<redacted>@up.test:8080/p?q=1" and out[8] == "--upstream=http://<redacted>@h/"
    assert out[10] == argv[10]  # other options as they were


def test_trace_header_has_no_secret(tmp_path):
    from callscope.trace import Recorder

    out = tmp_path / "t.trace"
    with Recorder(out, argv=["callscope", "serve", "g.wasm", "--upstream", "http://u:pw@127.0.0.1:9/"]):
        pass
    with TraceReader(out) as r:
        argv = " ".join(r.header["argv"])
    assert "pw" not in argv and "<redacted>@127.0.0.1:9/" in argv
