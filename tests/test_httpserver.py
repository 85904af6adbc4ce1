"""serve's HTTP/1.1 server on h11 (callscope/httpserver.py): bad framing is
400, chunked bodies are read (a pipelined request after one is served),
limits on heads and bodies, timeouts, bounded connections (issue 13)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from callscope.httpserver import H11Server


@pytest.fixture
def server():
    seen = []

    def handler(method, target, headers, body):
        seen.append((method, target, body))
        return 200, [("content-type", b"text/plain")], f"{method} {target} {len(body)}".encode()

    lst = socket.create_server(("127.0.0.1", 0))
    srv = H11Server(lst, handler, max_connections=2, idle_timeout=1.0, read_timeout=1.0, max_head=4096,
                    max_body=1000)
    srv.start()
    srv.seen = seen
    yield srv
    srv.shutdown()


def raw(port, data, wait=3.0):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def test_bad_content_length_is_400(server):
    r = raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400") and not server.seen


def test_garbage_is_400(server):
    assert raw(server.port, b"\x16\x03\x01 hello\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_chunked_body_is_read_and_the_pipelined_request_served(server):
    r = raw(server.port, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                         b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.count(b"HTTP/1.1 200") == 2
    assert server.seen == [("POST", "/a", b"abcde"), ("GET", "/b", b"")]


def test_limits(server):
    assert raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 5000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    r = raw(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    assert r.startswith(b"HTTP/1.1 413")


def test_idle_connections_time_out_and_connections_are_bounded(server):
    a = socket.create_connection(("127.0.0.1", server.port))
    b = socket.create_connection(("127.0.0.1", server.port))
    time.sleep(0.2)
    # a third while two are held: refused with 503
    assert raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
    # the two idle ones are closed by the idle timeout (a slowloris holds nothing for long)
    a.settimeout(5)
    b.settimeout(5)
    assert a.recv(10) == b"" and b.recv(10) == b""
    a.close()
    b.close()
    time.sleep(0.2)
    assert raw(server.port, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_keep_alive_serves_many_requests_on_one_connection(server):
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20))
    r = raw(server.port, reqs + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.count(b"HTTP/1.1 200") == 21
