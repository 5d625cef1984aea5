"""The WSGI adapter: what the core receives and what the client gets back, and bodies over
1 MiB refused without being read."""

from __future__ import annotations

import io
import json
from typing import Any

from werkzeug.test import Client, EnvironBuilder

from edge_worker.core.pop import HttpRequest, HttpResponse
from edge_worker.host.wsgi import MAX_BODY, WsgiApp

seen: list[HttpRequest] = []


def echo(request: HttpRequest) -> HttpResponse:
    seen.append(request)
    return HttpResponse(201, [("Content-Type", "application/json"), ("X-Echo", "1")],
                        json.dumps({"path": request.path, "size": len(request.body)}).encode())


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


class Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def call(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))  # type: ignore[arg-type]
    return got["status"], got["headers"], body


def test_the_core_gets_method_path_query_headers_and_body() -> None:
    response = Client(WsgiApp(echo)).post(
        "/v1/caf%C3%A9?x=1&y=2", data=b'{"a": 1}',
        headers={"Content-Type": "application/json", "X-Poprules-Customer": "tok"})
    assert response.status == "201 Created"
    assert response.headers["X-Echo"] == "1"
    assert response.headers["Content-Length"] == str(len(response.data))
    request = seen[-1]
    assert (request.method, request.path, request.query) == ("POST", "/v1/café", "x=1&y=2")
    assert request.body == b'{"a": 1}'
    assert request.headers["x-poprules-customer"] == "tok"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == "8"


def test_head_sends_no_body() -> None:
    status, headers, body = call(WsgiApp(echo),
                                 EnvironBuilder("/healthz", method="HEAD").get_environ())
    assert status.startswith("201") and body == b"" and int(headers["Content-Length"]) > 0


def test_a_declared_body_over_the_limit_is_413_unread() -> None:
    environ = EnvironBuilder("/v1/quote", method="POST").get_environ()
    environ.update({"CONTENT_LENGTH": str(MAX_BODY + 1), "wsgi.input": Unreadable()})
    status, headers, body = call(WsgiApp(echo), environ)
    assert status == "413 Request Entity Too Large"
    assert json.loads(body)["error"]["field"] == "body"
    assert headers["Content-Type"] == "application/json"


def test_a_streamed_body_is_read_up_to_the_limit() -> None:
    def streamed(size: int) -> tuple[str, dict[str, str], bytes]:
        environ = EnvironBuilder("/v1/quote", method="POST").get_environ()
        environ.pop("CONTENT_LENGTH", None)
        environ.update({"wsgi.input": io.BytesIO(b"x" * size), "wsgi.input_terminated": True})
        return call(WsgiApp(echo), environ)

    assert streamed(MAX_BODY + 1)[0].startswith("413")
    status, _, body = streamed(MAX_BODY)
    assert status.startswith("201") and json.loads(body)["size"] == MAX_BODY


def test_a_bad_content_length_is_400() -> None:
    environ = EnvironBuilder("/v1/quote", method="POST").get_environ()
    environ.update({"CONTENT_LENGTH": "-5"})
    status, _, body = call(WsgiApp(echo), environ)
    assert status.startswith("400") and "Content-Length" in json.loads(body)["error"]["message"]


def test_a_crash_in_the_core_is_a_500_without_a_trace() -> None:
    response = Client(WsgiApp(boom)).get("/healthz")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"field": None, "message": "internal error"}}
