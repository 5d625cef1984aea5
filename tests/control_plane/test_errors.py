"""Errors are JSON everywhere: unknown paths, wrong methods, oversized bodies, crashes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.config import ConfigError
from tests.control_plane.conftest import Plane, error_of, start_app


@pytest.fixture
def small(migrated: str, tmp_path: Path) -> Iterator[Plane]:
    app = start_app(migrated, tmp_path / "keys", MAX_CONTENT_LENGTH=1024)

    @app.get("/v1/crash")
    def crash() -> str:
        raise RuntimeError("secret internals")

    yield Plane(app)
    app.extensions["poprules"].db.dispose()


def test_unknown_path_is_404(plane: Plane) -> None:
    for path in ("/", "/v1/nothing", "/v1/merchants/abc", "/v1/merchants/1/tokens/x"):
        response = plane.call("GET", path)
        assert response.status_code == 404, path
        assert error_of(response)["message"] == "no such resource"


def test_wrong_method_is_405_with_allow(plane: Plane) -> None:
    response = plane.call("PUT", "/v1/keys")
    assert response.status_code == 405
    assert error_of(response)["field"] is None
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_oversized_body_is_413(small: Plane) -> None:
    account = small.merchant("alpha")
    path = f"/v1/merchants/{account.merchant_id}/tokens"
    big = {"scopes": ["read"], "name": "x" * 2000}
    response = small.call("POST", path, account.token, json=big)
    assert response.status_code == 413
    assert error_of(response) == {"field": "body",
                                  "message": "the body is larger than 1024 bytes"}
    # refused before any view reads it, on an endpoint that takes no body too
    assert small.call("GET", f"/v1/merchants/{account.merchant_id}", account.token,
                      data=b"x" * 2000).status_code == 413
    # and without a declared length, cut off as it is read
    def unsized(body: bytes) -> int:
        response = small.client.post(path, input_stream=io.BytesIO(body),
                                     environ_base={"wsgi.input_terminated": True},
                                     headers={"Authorization": f"Bearer {account.token}",
                                              "Transfer-Encoding": "chunked"})
        return response.status_code

    fits = b'{"scopes": ["read"]' + b" " * (1024 - 20) + b"}"
    assert (len(fits), unsized(fits), unsized(fits + b" ")) == (1024, 201, 413)
    assert small.call("POST", path, account.token, json={"scopes": ["read"]}).status_code == 201


def test_unexpected_failure_is_a_json_500_without_internals(small: Plane,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    response = small.call("GET", "/v1/crash")
    assert response.status_code == 500
    assert error_of(response)["message"].startswith("internal error")
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert "secret internals" in caplog.text  # the operator's log has it


@pytest.mark.parametrize(("config", "message"), [
    ({"MAX_CONTENT_LENGTH": "lots"}, "MAX_CONTENT_LENGTH"),
    ({"MAX_CONTENT_LENGTH": 0}, "MAX_CONTENT_LENGTH"),
    ({"DATABASE_URL": "mysql://db/poprules"}, "not supported"),
    ({"DATABASE_URL": "sqlite://"}, "in-memory"),
    ({"DATABASE_URL": "not a url"}, "not a database URL"),
])
def test_unusable_settings_are_refused_with_a_reason(tmp_path: Path, config: dict[str, object],
                                                     message: str) -> None:
    settings = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db'}", **config}
    with pytest.raises(ConfigError, match=message):
        start_app(settings.pop("DATABASE_URL"), tmp_path / "keys", **settings)  # type: ignore[arg-type]
