"""A small client of Cloudflare's API v4 for the few calls the release deployer makes:
upload a Worker version, list versions, create a deployment, list deployments.

The standard library's urllib is enough (as in control_plane/client.py): four JSON calls and
one multipart upload do not warrant a dependency. Cloudflare answers every call with
`{"success", "errors": [{"code", "message"}], "result"}`; a failure becomes a
`CloudflareError` that carries Cloudflare's own codes and messages, since those are what an
operator looks up. A rate limit (429) or a server error (5xx) is retried with exponential
backoff, honouring Retry-After; any other refusal (401, 403, 400, ...) is not, because asking
again cannot change the answer. A connection that fails or times out is not retried either:
an upload may have landed, and the operator should look before the deployer guesses.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
TIMEOUT = 60.0  # seconds per request; an upload of a few MB must fit
ATTEMPTS = 4  # the first try and three retries
BACKOFF = 1.0  # seconds before the first retry; doubled each time
MAX_WAIT = 30.0  # the longest wait honoured from a Retry-After header

#: Content types of module parts, by file name ending (anything else is a data module).
MODULE_TYPES = (
    (".py", "text/x-python"),
    (".mjs", "application/javascript+module"),
    (".js", "application/javascript+module"),
    (".wasm", "application/wasm"),
)
DATA_TYPE = "application/octet-stream"

#: The tag and message of a version, as Cloudflare names the annotations.
TAG = "workers/tag"
MESSAGE = "workers/message"
MESSAGE_LIMIT = 100  # bytes Cloudflare keeps of a message


class CloudflareError(Exception):
    """Cloudflare refused a call, or could not be reached. `status` is the HTTP status (None
    when there was no answer) and `errors` Cloudflare's own (code, message) pairs."""

    def __init__(self, what: str, status: int | None,
                 errors: Sequence[tuple[int | None, str]] = (), detail: str = "") -> None:
        self.status = status
        self.errors = list(errors)
        said = "; ".join(f"{code} {message}" if code is not None else message
                         for code, message in self.errors) or detail
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"Cloudflare refused to {what} ({answer})" + (f": {said}" if said else ""))


@dataclass(frozen=True)
class Version:
    id: str
    number: int | None
    tag: str | None
    message: str | None


@dataclass(frozen=True)
class Deployment:
    id: str
    split: tuple[tuple[str, float], ...]  # (version id, percentage), as Cloudflare lists them
    message: str | None

    def percent_of(self, version_id: str) -> float:
        return sum(share for vid, share in self.split if vid == version_id)


def content_type(path: str) -> str:
    """The content type a module part of this name is uploaded with."""
    for ending, kind in MODULE_TYPES:
        if path.endswith(ending):
            return kind
    return DATA_TYPE


def plain_number(share: float) -> int | float:
    """A percentage as JSON writes it best: 10, not 10.0."""
    return int(share) if float(share).is_integer() else share


def message_of(text: str) -> str:
    """`text` cut to the bytes Cloudflare keeps, from the left: its end (a release's hash) is
    the part that identifies it."""
    data = text.encode()
    if len(data) <= MESSAGE_LIMIT:
        return text
    return "..." + data[-(MESSAGE_LIMIT - 3):].decode("utf-8", "ignore")


class CloudflareApi:
    """Calls about one Worker (`script`) of one account, authenticated by an API token that
    needs the "Workers Scripts: Edit" permission."""

    def __init__(self, account_id: str, api_token: str, base_url: str = DEFAULT_BASE_URL, *,
                 script: str, timeout: float = TIMEOUT, attempts: int = ATTEMPTS,
                 backoff: float = BACKOFF, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self.script = script
        self._token = api_token
        self.timeout, self.attempts, self.backoff, self._sleep = timeout, attempts, backoff, sleep

    def __repr__(self) -> str:  # never the token
        return f"CloudflareApi({self.account_id!r}, script={self.script!r}, {self.base_url!r})"

    @property
    def _script_path(self) -> str:
        return (f"/accounts/{quote(self.account_id, safe='')}/workers/scripts/"
                f"{quote(self.script, safe='')}")

    def upload_version(self, files: Mapping[str, tuple[bytes, str]], metadata: Mapping[str, Any],
                       tag: str, message: str) -> str:
        """Upload `files` ({module name: (content, content type)}) as a new version of the
        Worker, not deployed; `metadata` is the metadata part (main_module, compatibility,
        bindings), to which the tag and message annotations are added. The version's id."""
        body = {**metadata, "annotations": {TAG: tag, MESSAGE: message_of(message)}}
        parts: list[tuple[str, str | None, str, bytes]] = [
            ("metadata", None, "application/json", json.dumps(body, separators=(",", ":")).encode())]
        parts += [(name, name, kind, content) for name, (content, kind) in sorted(files.items())]
        boundary = "poprules-" + secrets.token_hex(16)
        result = self._call("upload a version of the Worker", "POST",
                            f"{self._script_path}/versions", _multipart(boundary, parts),
                            f"multipart/form-data; boundary={boundary}")
        if not isinstance(result, dict) or not isinstance(result.get("id"), str):
            raise CloudflareError("upload a version of the Worker", 200,
                                  detail="the answer has no version id")
        version_id: str = result["id"]
        return version_id

    def versions(self, per_page: int = 100) -> list[Version]:
        """The Worker's latest versions, newest first."""
        query = urlencode({"page": 1, "per_page": per_page})
        result = self._call("list the Worker's versions", "GET",
                            f"{self._script_path}/versions?{query}")
        items = result.get("items", []) if isinstance(result, dict) else result
        return [_version(item) for item in items or []]

    def deploy(self, split: Sequence[tuple[str, float]], message: str) -> Deployment:
        """Send `split` ([(version id, percentage)], summing to 100) of the Worker's traffic to
        those versions, at once."""
        body = {"strategy": "percentage",
                "versions": [{"version_id": vid, "percentage": plain_number(share)}
                             for vid, share in split],
                "annotations": {MESSAGE: message_of(message)}}
        result = self._call("deploy the Worker", "POST", f"{self._script_path}/deployments",
                            json.dumps(body).encode(), "application/json")
        return _deployment(result)

    def deployments(self) -> list[Deployment]:
        """The Worker's deployments, the one serving traffic first."""
        result = self._call("list the Worker's deployments", "GET",
                            f"{self._script_path}/deployments")
        items = result.get("deployments", []) if isinstance(result, dict) else []
        return [_deployment(item) for item in items or []]

    def _call(self, what: str, method: str, path: str, body: bytes | None = None,
              kind: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if kind is not None:
            headers["Content-Type"] = kind
        wait = self.backoff
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.base_url + path, data=body, headers=headers,
                                             method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _result(what, response.status, response.read())
            except urllib.error.HTTPError as exc:
                status, data, retry_after = exc.code, exc.read(), exc.headers.get("Retry-After")
                exc.close()
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                raise CloudflareError(what, None, detail=f"{self.base_url}: {reason}") from None
            if (status != 429 and status < 500) or attempt == self.attempts:
                return _result(what, status, data)
            self._sleep(_delay(retry_after, wait))
            wait *= 2
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt


def _delay(retry_after: str | None, wait: float) -> float:
    try:
        asked = float(retry_after) if retry_after is not None else 0.0
    except ValueError:  # an HTTP date: not worth parsing, back off as usual
        asked = 0.0
    return min(max(asked, wait), MAX_WAIT)


def _result(what: str, status: int, data: bytes) -> Any:
    """The `result` of a successful answer; otherwise the error, with Cloudflare's words."""
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        text = data[:200].decode("utf-8", "replace").strip()
        raise CloudflareError(what, status, detail=f"not a JSON answer: {text!r}")
    if answer.get("success") is True and status < 400:
        return answer.get("result")
    errors = [(item.get("code"), str(item.get("message", "")))
              for item in answer.get("errors") or [] if isinstance(item, dict)]
    raise CloudflareError(what, status, errors, detail="success is not true")


def _multipart(boundary: str, parts: Sequence[tuple[str, str | None, str, bytes]]) -> bytes:
    out = bytearray()
    for name, filename, kind, content in parts:
        disposition = f'form-data; name="{_quoted(name)}"'
        if filename is not None:
            disposition += f'; filename="{_quoted(filename)}"'
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: {kind}\r\n\r\n").encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _quoted(name: str) -> str:
    if any(c in name for c in '"\r\n\\'):
        raise ValueError(f"a module name Cloudflare cannot take: {name!r}")
    return name


def _version(item: Any) -> Version:
    item = item if isinstance(item, dict) else {}
    # The annotations are at the top of a listed version (older answers: under metadata).
    annotations = item.get("annotations") or (item.get("metadata") or {}).get("annotations") or {}
    number = item.get("number")
    return Version(id=str(item.get("id", "")), number=number if isinstance(number, int) else None,
                   tag=annotations.get(TAG), message=annotations.get(MESSAGE))


def _deployment(item: Any) -> Deployment:
    item = item if isinstance(item, dict) else {}
    split = tuple((str(v.get("version_id", "")), float(v.get("percentage", 0)))
                  for v in item.get("versions") or [] if isinstance(v, dict))
    return Deployment(id=str(item.get("id", "")), split=split,
                      message=(item.get("annotations") or {}).get(MESSAGE))
