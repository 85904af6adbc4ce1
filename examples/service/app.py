"""A well-behaved wasi:http/service@0.3.0 handler: it answers every request on
the task it was invoked on, writes the response body from work spawned on that
same task, and makes no outgoing calls.

GET /       -> 200 "hello from callscope\\n"
GET /echo.. -> 200 "path=<path> id=<x-request-id>\\n"
GET /sleep  -> 200 "slept\\n" after wasi:clocks/monotonic-clock@0.3.0 wait-for(5 ms)
GET /log    -> 200 "logged\\n" after writing a line through wasi:cli/stdout@0.3.0
otherwise   -> 404
"""

from componentize_py_async_support import spawn
from componentize_py_types import Ok
from wit_world import byte_stream, result_option_wasi_http_types_fields_wasi_http_types_error_code_future
from wit_world import exports
from wit_world.imports import monotonic_clock, stdout
from wit_world.imports.wasi_http_types import Fields, Method_Get, Request, Response


async def _send_body(body_writer, trailers_writer, body: bytes) -> None:
    with body_writer:
        await body_writer.write_all(body)
    await trailers_writer.write(Ok(None))


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        path = request.get_path_with_query() or "/"
        method = request.get_method()
        rid = b",".join(request.get_headers().get("x-request-id"))
        if isinstance(method, Method_Get) and path == "/":
            status, body = 200, b"hello from callscope\n"
        elif isinstance(method, Method_Get) and path.startswith("/echo"):
            status, body = 200, b"path=" + path.encode() + b" id=" + rid + b"\n"
        elif isinstance(method, Method_Get) and path == "/sleep":
            await monotonic_clock.wait_for(5_000_000)
            status, body = 200, b"slept\n"
        elif isinstance(method, Method_Get) and path == "/log":
            log_writer, log_reader = byte_stream()
            done = stdout.write_via_stream(log_reader)
            with log_writer:
                await log_writer.write_all(b"log line for " + rid + b"\n")
            await done.read()
            status, body = 200, b"logged\n"
        else:
            status, body = 404, b"not found\n"
        headers = Fields.from_list([("content-type", b"text/plain"), ("x-request-id", rid)])
        body_writer, body_reader = byte_stream()
        trailers_writer, trailers_reader = \
            result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))
        response, _transmitted = Response.new(headers, body_reader, trailers_reader)
        if status != 200:
            response.set_status_code(status)
        spawn(_send_body(body_writer, trailers_writer, body))
        return response
