"""Every error the API gives is JSON, `{"error": {"field", "message"}}` (plus where it is, for
errors in an uploaded program, catalog or request): never an HTML page and never a stack
trace, whatever failed."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

from poprules.errors import InputError


class ApiError(Exception):
    """An answer other than success; `field` names the part of the request at fault (null
    when the request as a whole is)."""

    def __init__(self, status: int, field: str | None, message: str,
                 headers: dict[str, str] | None = None,
                 location: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message
        self.headers = headers or {}
        self.location = location or {}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, field, message)


def invalid_input(exc: InputError, source: str | None = None) -> ApiError:
    """422 for a program, catalog or request error (spec 9.3), located: `source` (which
    upload: program, catalog, samples, requests), `rule`, `line`, `column` and `text` when
    known, so a merchant's editor can point at the place."""
    where = exc.where
    location = {"source": exc.source or source, "rule": exc.rule,
                "line": where.line if where else None,
                "column": where.column if where and where.column is not None else exc.column,
                "text": exc.text}
    return ApiError(422, exc.field, exc.message,
                    location={k: v for k, v in location.items() if v is not None})


def error_response(status: int, field: str | None, message: str,
                   headers: Any = (), location: dict[str, Any] | None = None) -> Response:
    response = jsonify({"error": {"field": field, "message": message, **(location or {})}})
    response.status_code = status
    response.headers.extend(headers)
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.field, exc.message, exc.headers, exc.location)


def _http_error(exc: HTTPException) -> Response:
    # Keep what a client needs (Allow on a 405), drop the HTML page's content type.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    field = "body" if exc.code == 413 else None
    message = {
        404: "no such resource",
        405: "this resource does not accept that method",
        413: f"the body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes",
    }.get(exc.code or 500, exc.description or exc.name)
    return error_response(exc.code or 500, field, message, headers)


def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unexpected error", exc_info=exc)
    return error_response(500, None, "internal error; the operator's log has the details")


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
