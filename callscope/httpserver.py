"""``callscope serve``'s HTTP/1.1 server, on h11 (a maintained, pure-Python
HTTP/1.1 state machine; we only move bytes).

One thread per connection, at most ``max_connections`` at once (one more
gets ``503`` and is closed). Each connection has an idle timeout (between
requests) and a read timeout (inside one); bad framing (a malformed
request line, ``Content-Length: abc``, a broken chunked body) is answered
``400`` and the connection closed; request heads over ``max_head`` bytes get
``431``, bodies over ``max_body`` get ``413``. Chunked bodies are read to
their end, so a pipelined request after one is served, not lost.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable, Optional

from http import HTTPStatus

import h11

Handler = Callable[[str, str, list, bytes], tuple]  # (method, target, [(name, value bytes)], body) -> (status, [(name, value bytes)], body)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class H11Server:
    def __init__(self, listener: socket.socket, handler: Handler, *, max_connections: int = 64,
                 idle_timeout: float = 30.0, read_timeout: float = 10.0, max_head: int = 16 << 10,
                 max_body: int = 16 << 20):
        self.listener = listener
        self.handler = handler
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.max_head = max_head
        self.max_body = max_body
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusing = threading.BoundedSemaphore(8)  # 503s being sent at once
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._conns: set = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept, name="callscope-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    # ------------------------------------------------------------- accept

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                self._refuse(sock)
                continue
            with self._lock:
                self._conns.add(sock)
            threading.Thread(target=self._serve, args=(sock,), name="callscope-http-conn", daemon=True).start()

    def _refuse(self, sock: socket.socket) -> None:
        """503 and close, on a short-lived thread: what the client sent is
        drained first (closing with unread data would reset the connection
        before the client reads the 503)."""

        if not self._refusing.acquire(blocking=False):  # (a flood: just close)
            sock.close()
            return

        def refuse():
            try:
                sock.settimeout(1.0)
                sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            sock.close()
            self._refusing.release()

        threading.Thread(target=refuse, name="callscope-http-refuse", daemon=True).start()

    # --------------------------------------------------------- connection

    def _serve(self, sock: socket.socket) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        try:
            while not self._stopping:
                req = self._read_request(sock, conn)
                if req is None:
                    return
                method, target, headers, body = req
                try:
                    status, rheaders, rbody = self.handler(method, target, headers, body)
                except Exception as e:  # (the handler's own failure: the client still gets an answer)
                    status, rheaders, rbody = 500, [], f"callscope: {type(e).__name__}\n".encode()
                if not self._respond(sock, conn, status, rheaders, rbody, method):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        finally:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass
            self._slots.release()

    def _next_event(self, sock: socket.socket, conn: h11.Connection, timeout: float):
        while True:
            ev = conn.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            sock.settimeout(timeout)
            data = sock.recv(65536)
            conn.receive_data(data)  # (b"" is the end of the stream)

    def _read_request(self, sock: socket.socket, conn: h11.Connection) -> Optional[tuple]:
        try:
            ev = self._next_event(sock, conn, self.idle_timeout)
            if isinstance(ev, (h11.ConnectionClosed,)) or ev is h11.PAUSED:
                return None
            if not isinstance(ev, h11.Request):
                return None
            if len(ev.target) + sum(len(k) + len(v) + 4 for k, v in ev.headers) > self.max_head:
                self._error(sock, conn, 431, "request head too large")
                return None
            method = ev.method.decode("ascii", "replace")
            target = ev.target.decode("latin-1")
            headers = [(k.decode("latin-1").lower(), v) for k, v in ev.headers]
            chunks = []
            size = 0
            while True:
                ev = self._next_event(sock, conn, self.read_timeout)
                if isinstance(ev, h11.Data):
                    size += len(ev.data)
                    if size > self.max_body:
                        self._error(sock, conn, 413, "request body too large")
                        return None
                    chunks.append(ev.data)
                elif isinstance(ev, h11.EndOfMessage):
                    break
                else:
                    return None
            return method, target, headers, b"".join(chunks)
        except h11.RemoteProtocolError as e:
            code = e.error_status_hint
            if "exceeded" in str(e).lower() or "too long" in str(e).lower():
                code = 431
            self._error(sock, conn, code, "bad request")
            return None
        except (socket.timeout, OSError):
            return None

    def _error(self, sock, conn, status: int, text: str) -> None:
        body = f"callscope: {text}\n".encode()
        try:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                data = conn.send(h11.Response(status_code=status, reason=_reason(status), headers=[
                    ("content-length", str(len(body))), ("connection", "close")]))
                data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            else:
                raise h11.LocalProtocolError("no response possible")
        except h11.LocalProtocolError:
            data = (f"HTTP/1.1 {status} Error\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
                    .encode() + body)
        try:
            sock.settimeout(self.read_timeout)
            sock.sendall(data)
        except OSError:
            pass

    def _respond(self, sock, conn, status: int, headers: list, body: bytes, method: str) -> bool:
        hs = [(k, v) for k, v in headers
              if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        hs.append(("content-length", str(len(body))))
        try:
            data = conn.send(h11.Response(status_code=status, reason=_reason(status), headers=hs))
            if method != "HEAD":
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
            sock.settimeout(self.read_timeout)
            sock.sendall(data)
            return True
        except (h11.LocalProtocolError, OSError):
            return False
