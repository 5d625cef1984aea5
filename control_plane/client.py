"""A small HTTP client of the control plane's API, for the `poprules` commands that talk to a
server (control_plane/client_cli.py).

The standard library's urllib is enough for JSON over HTTP and keeps the CLI's start-up and
dependencies as they are. Every failure becomes a `ClientError` whose text is fit to show a
person: the server's own field and message, or what went wrong with the connection.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"  # where `poprules cp serve` listens by default
TIMEOUT = 60.0  # seconds; publishing compiles and checks a module, which can take a while


class ClientError(Exception):
    """Something the user must read: the request did not do what was asked."""


class ApiError(ClientError):
    """The server answered with an error: `status`, and its `field` and `message`."""

    def __init__(self, method: str, path: str, status: int, error: dict[str, Any]) -> None:
        self.status = status
        self.field: str | None = error.get("field")
        self.message = str(error.get("message", ""))
        where = [f"{key} {error[key]}" for key in ("source", "rule", "line", "column")
                 if error.get(key) is not None]
        label = " ".join(filter(None, [self.field, f"({', '.join(where)})" if where else ""]))
        super().__init__(f"{method} {path}: {status}: " + (f"{label}: " if label else "")
                         + self.message)


class Client:
    """Calls to one server with one token. The merchant is the token's own (`whoami`),
    looked up once, on the first call that needs it."""

    def __init__(self, base_url: str, token: str, *, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ClientError(f"not an http(s) URL: {base_url!r}")
        if not token.strip():
            raise ClientError("a token is needed: --token or POPRULES_TOKEN")
        self.base_url = base_url.rstrip("/")
        self.token = token.strip()
        self.timeout = timeout
        self._merchant_id: int | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer of `method path` with `body` (JSON) when given."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _decoded(method, path, response.status, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                payload = exc.read()
            raise _refusal(method, path, exc.code, payload) from None
        except urllib.error.URLError as exc:
            raise ClientError(f"cannot reach {self.base_url}: {_reason(exc.reason)}") from None
        except TimeoutError:
            raise ClientError(f"{self.base_url} did not answer within "
                              f"{self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"connection to {self.base_url} failed: "
                              f"{_reason(exc) or type(exc).__name__}") from None

    @property
    def merchant_id(self) -> int:
        if self._merchant_id is None:
            self._merchant_id = int(self.whoami()["merchant_id"])
        return self._merchant_id

    def merchant_path(self, tail: str) -> str:
        return f"/v1/merchants/{self.merchant_id}{tail}"

    def whoami(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("GET", "/v1/whoami")
        return answer

    def upload_version(self, program: str, program_format: str, catalog: str,
                       catalog_format: str, samples: list[Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"program": program, "program_format": program_format,
                                "catalog": catalog, "catalog_format": catalog_format}
        if samples is not None:
            body["samples"] = samples
        answer: dict[str, Any] = self.call("POST", self.merchant_path("/versions"), body)
        return answer

    def publish(self, version: int, group: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("POST", self.merchant_path("/releases"),
                                           _with_group({"version": version}, group))
        return answer

    def releases(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("GET", self.merchant_path("/releases"))
        return answer

    def rollback(self, to: int, group: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("POST", self.merchant_path("/rollback"),
                                           _with_group({"to": to}, group))
        return answer

    def simulate(self, version: int, requests: list[Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self.call(
            "POST", self.merchant_path(f"/versions/{version}/simulate"), {"requests": requests})
        return answer

    def diff(self, version: int, requests: list[Any], group: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.call(
            "POST", self.merchant_path(f"/versions/{version}/diff"),
            _with_group({"requests": requests}, group))
        return answer


def _with_group(body: dict[str, Any], group: str | None) -> dict[str, Any]:
    return body if group is None else {**body, "group": group}


def _decoded(method: str, path: str, status: int, payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        raise ClientError(f"{method} {path}: {status}, but the answer is not JSON "
                          f"(is this a poprules control plane?)") from None


def _refusal(method: str, path: str, status: int, payload: bytes) -> ClientError:
    """The server's error, or, when the answer is not its envelope (a proxy's page), the
    status alone."""
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return ApiError(method, path, status, body["error"])
    return ClientError(f"{method} {path}: {status}, and the answer is not the control "
                       "plane's (is this a poprules control plane?)")


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)
