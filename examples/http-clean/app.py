"""http-clean: a proxy whose every call is its own request's; NOT misattributed
(wasi:http/service@0.3.0).

Each request GETs one upstream part (carrying its x-request-id), answers,
and then, after answering, POSTs its own audit record with a body stream it
creates itself. The POST is spawned work: it runs after ``handle`` returned,
but on the request's own task (componentize-py keeps the task alive until
its spawned work ends, NOTES §7). No state is shared between requests.

Truth: the outgoing request's path says whom it is for, ``/for/N;/...``.
"""

from componentize_py_async_support import spawn
from componentize_py_types import Ok
from wit_world import byte_stream, exports
from wit_world import result_option_wasi_http_types_fields_wasi_http_types_error_code_future as _trailers_future
from wit_world import result_unit_wasi_http_types_error_code_future as _unit_future
from wit_world.imports import client
from wit_world.imports.wasi_http_types import (Fields, Method_Get, Method_Post, Request, Response,
                                               Scheme_Http)


def _trailers():
    return _trailers_future(lambda: Ok(None))


async def _write(writer, trailers_writer, body: bytes) -> None:
    with writer:
        await writer.write_all(body)
    await trailers_writer.write(Ok(None))


async def _read_all(reader) -> bytes:
    chunks = []
    with reader:
        while not reader.writer_dropped:
            chunks.append(await reader.read(16 * 1024))
    return b"".join(chunks)


def _request(method, path: str, headers: list, contents):
    trailers_writer, trailers_reader = _trailers()
    request, _transmitted = Request.new(Fields.from_list(headers), contents, trailers_reader, None)
    request.set_method(method)
    request.set_scheme(Scheme_Http())
    request.set_authority("upstream.example")
    request.set_path_with_query(path)
    return request, trailers_writer


async def _get(path: str, rid: bytes) -> bytes:
    request, trailers_writer = _request(Method_Get(), path, [("x-request-id", rid)], None)
    spawn(trailers_writer.write(Ok(None)))
    response = await client.send(request)
    _res_writer, res_reader = _unit_future(lambda: Ok(None))
    body, _trailers_reader = Response.consume_body(response, res_reader)
    return await _read_all(body)


async def _audit(n: int, rid: bytes) -> None:
    writer, contents = byte_stream()
    request, trailers_writer = _request(Method_Post(), f"/for/{n};/audit", [("content-type", b"text/plain")],
                                        contents)
    spawn(_write(writer, trailers_writer, b"audit " + rid))
    response = await client.send(request)
    response.get_status_code()


def _number(rid: bytes) -> int:
    text = rid.decode("latin-1")
    return int(text[4:]) if text.startswith("req-") and text[4:].isdigit() else 0


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        rid = b"".join(request.get_headers().get("x-callscope-request-id"))
        n = _number(rid)
        part = await _get(f"/for/{n};/part", rid)
        body_writer, body_reader = byte_stream()
        trailers_writer, trailers_reader = _trailers()
        response, _transmitted = Response.new(Fields.from_list([("content-type", b"text/plain")]),
                                              body_reader, trailers_reader)
        spawn(_write(body_writer, trailers_writer, part))
        spawn(_audit(n, rid))
        return response
