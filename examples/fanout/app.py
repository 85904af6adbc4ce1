"""A fan-out proxy for wasi:http/service@0.3.0.

For each incoming request it sends FANOUT upstream requests with client.send
(carrying the incoming x-request-id), reads their bodies, and answers with a
summary. After answering, it queues an audit entry in a module-level queue
and spawns a flusher (componentize_py_async_support.spawn) that waits
AUDIT_COALESCE_NS (wasi:clocks monotonic-clock wait-for), so that entries
queued meanwhile go out together, then sends every queued entry upstream as a
POST to /audit carrying the x-request-id of the request it describes.

The queue is shared by all requests on the instance. Served one at a time
(no concurrent reuse) each flusher finds only its own request's entry. Under
concurrent reuse, the first flusher to wake sends the entries of requests
that answered meanwhile too, so those outgoing requests land on its task
although other requests caused them (misattributed imports). This is the
pattern callscope exists to show.
"""

from componentize_py_async_support import spawn
from componentize_py_types import Ok
from wit_world import byte_stream, result_option_wasi_http_types_fields_wasi_http_types_error_code_future
from wit_world import exports
from wit_world.imports import client, monotonic_clock
from wit_world.imports.wasi_http_types import (Fields, Method_Get, Method_Post, Request, Response,
                                               Scheme_Http)

FANOUT = 2
AUDIT_COALESCE_NS = 2_000_000
UPSTREAM = "upstream.example"

_audit_queue: list = []


def _trailers():
    return result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))


async def _read_all(reader) -> bytes:
    chunks = []
    with reader:
        while not reader.writer_dropped:
            chunks.append(await reader.read(16 * 1024))
    return b"".join(chunks)


def _outgoing(method, path: str, rid: bytes, body: bytes | None):
    headers = Fields.from_list([("x-request-id", rid)])
    trailers_writer, trailers_reader = _trailers()
    contents = None
    body_writer = None
    if body is not None:
        body_writer, contents = byte_stream()
    request, _transmitted = Request.new(headers, contents, trailers_reader, None)
    request.set_method(method)
    request.set_scheme(Scheme_Http())
    request.set_authority(UPSTREAM)
    request.set_path_with_query(path)
    return request, body_writer, trailers_writer


async def _fetch(path: str, rid: bytes) -> bytes:
    request, _, trailers_writer = _outgoing(Method_Get(), path, rid, None)
    spawn(trailers_writer.write(Ok(None)))
    response = await client.send(request)
    _res_writer, res_reader = _unit_future()
    body, _trailers_reader = Response.consume_body(response, res_reader)
    return await _read_all(body)


def _unit_future():
    from wit_world import result_unit_wasi_http_types_error_code_future
    return result_unit_wasi_http_types_error_code_future(lambda: Ok(None))


async def _post(path: str, rid: bytes, body: bytes) -> int:
    request, body_writer, trailers_writer = _outgoing(Method_Post(), path, rid, body)

    async def write_body():
        with body_writer:
            await body_writer.write_all(body)
        await trailers_writer.write(Ok(None))

    spawn(write_body())
    response = await client.send(request)
    return response.get_status_code()


async def _flush_audit() -> None:
    # Coalesces: entries queued by other requests while this waits are sent
    # from this request's task.
    await monotonic_clock.wait_for(AUDIT_COALESCE_NS)
    batch = _audit_queue[:]
    del _audit_queue[:]
    for rid, entry in batch:
        await _post("/audit", rid, entry)


async def _send_body(body_writer, trailers_writer, body: bytes) -> None:
    with body_writer:
        await body_writer.write_all(body)
    await trailers_writer.write(Ok(None))


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        path = request.get_path_with_query() or "/"
        rid = b",".join(request.get_headers().get("x-request-id"))
        parts = []
        for i in range(FANOUT):
            parts.append(await _fetch(f"/part/{i}{path}", rid))
        body = b"".join(parts)
        headers = Fields.from_list([("content-type", b"text/plain"), ("x-request-id", rid)])
        body_writer, body_reader = byte_stream()
        trailers_writer, trailers_reader = _trailers()
        response, _transmitted = Response.new(headers, body_reader, trailers_reader)
        spawn(_send_body(body_writer, trailers_writer, body))
        # Background work after responding.
        _audit_queue.append((rid, b"served " + path.encode() + b" for " + rid))
        spawn(_flush_audit())
        return response
