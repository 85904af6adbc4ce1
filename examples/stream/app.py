"""stream: a flusher that creates the body streams it sends (wasi:http/service@0.3.0).

Each request answers at once and queues an audit record (``audit req-N``)
on a queue shared by every request; the first request to find no flusher
pending spawns one. The flusher waits 1 ms (monotonic-clock wait-for) and
POSTs every queued record upstream with ``client.send``: for each record
it creates the request, and the body stream carrying the record, itself.
So the records of requests that answered meanwhile go out on the
flusher's request's task (misattributed), the only argument of ``send`` is a
request whose body stream was created under the wrong root (lineage repeats
the stack's error), and the record's text travels only through that stream
(the request's headers carry no request data).

Truth: the outgoing request's path says whom it is for, ``/for/N;/audit``
(N from the incoming ``x-callscope-request-id: req-N``, root ``req-N ...``).
"""

from componentize_py_async_support import spawn
from componentize_py_types import Ok
from wit_world import byte_stream, exports
from wit_world import result_option_wasi_http_types_fields_wasi_http_types_error_code_future as _trailers_future
from wit_world.imports import client, monotonic_clock
from wit_world.imports.wasi_http_types import Fields, Method_Post, Request, Response, Scheme_Http

_queue: list = []
_flush_pending = False


def _trailers():
    return _trailers_future(lambda: Ok(None))


async def _write(writer, trailers_writer, body: bytes) -> None:
    with writer:
        await writer.write_all(body)
    await trailers_writer.write(Ok(None))


async def _post(path: str, body: bytes) -> int:
    writer, contents = byte_stream()  # created here, under the flusher's request
    trailers_writer, trailers_reader = _trailers()
    request, _transmitted = Request.new(Fields.from_list([("content-type", b"text/plain")]),
                                        contents, trailers_reader, None)
    request.set_method(Method_Post())
    request.set_scheme(Scheme_Http())
    request.set_authority("audit.example")
    request.set_path_with_query(path)
    spawn(_write(writer, trailers_writer, body))
    response = await client.send(request)
    return response.get_status_code()


async def _flush() -> None:
    global _flush_pending
    await monotonic_clock.wait_for(1_000_000)
    while _queue:
        n, record = _queue.pop(0)
        await _post(f"/for/{n};/audit", record)
    _flush_pending = False


def _number(rid: bytes) -> int:
    text = rid.decode("latin-1")
    return int(text[4:]) if text.startswith("req-") and text[4:].isdigit() else 0


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        global _flush_pending
        rid = b"".join(request.get_headers().get("x-callscope-request-id"))
        n = _number(rid)
        body_writer, body_reader = byte_stream()
        trailers_writer, trailers_reader = _trailers()
        response, _transmitted = Response.new(Fields.from_list([("content-type", b"text/plain")]),
                                              body_reader, trailers_reader)
        spawn(_write(body_writer, trailers_writer, b"ok"))
        _queue.append((n, b"audit " + rid))
        if not _flush_pending:
            _flush_pending = True
            spawn(_flush())
        return response
