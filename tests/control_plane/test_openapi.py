"""/openapi.json: every route is in it with every method, with what its decorators say about
who may call it, and the builder fills in what the code already knows. An endpoint added
without a contract fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask

from control_plane import openapi
from control_plane.auth import SCOPES, public, require
from control_plane.pop_auth import require_pop
from tests.control_plane.conftest import start_app

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    # The document does not depend on the database: SQLite only.
    directory = tmp_path_factory.mktemp("openapi")
    app = start_app(f"sqlite:///{directory / 'poprules.db'}", directory / "keys")
    yield app
    app.extensions["poprules"].db.dispose()


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    body: dict[str, Any] = response.get_json()
    return body


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_route_and_method_is_documented(app: Flask, document: dict[str, Any]) -> None:
    missing = []
    for rule in app.url_map.iter_rules():
        if not openapi.documented(rule):  # static files and the console's HTML pages
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert missing == [], ("routes without a contract: add YAML after --- in the view's "
                           "docstring (control_plane/openapi.py)")
    assert openapi.undocumented(app, document) == []


def test_it_is_served_to_anyone_as_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "poprules control plane"
    assert document["paths"]["/openapi.json"]["get"]["security"] == []


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert "#/components/schemas/Error" in refs
    for ref in refs:
        kind, name = re.fullmatch(r"#/components/(\w+)/(\w+)", ref).groups()  # type: ignore[union-attr]
        assert name in document["components"][kind], ref


def test_security_follows_the_decorators(app: Flask, document: dict[str, Any]) -> None:
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue  # test_every_route_and_method_is_documented says so
            scope = getattr(view, "required_scope", None)
            if getattr(view, "public", False):
                assert operation["security"] == [], rule.rule
                continue
            if scope == "pop":
                assert operation["security"] == [{"popSecret": []}], rule.rule
            elif scope in SCOPES:
                assert operation["security"] == [{"merchantToken": [scope]}], rule.rule
                assert operation["responses"]["403"] == {
                    "$ref": "#/components/responses/Forbidden"}
            else:
                assert operation["security"] == [{"merchantToken": []}], rule.rule
            assert operation["responses"]["401"] == {
                "$ref": "#/components/responses/Unauthorized"}, rule.rule


def test_the_error_envelope_is_a_shared_component(document: dict[str, Any]) -> None:
    components = document["components"]
    error = components["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["field", "message"]
    for name in ("Unauthorized", "Forbidden", "NotFound", "TooLarge", "Invalid"):
        assert components["responses"][name]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
    assert {"merchantToken", "popSecret"} <= set(components["securitySchemes"])
    tokens = document["paths"]["/v1/merchants/{merchant_id}/tokens"]["post"]
    assert {"401", "403", "404", "413", "422"} <= set(tokens["responses"])


def test_every_operation_documents_a_success(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        assert operation.get("summary"), (method, path)
        assert any(code.startswith(("2", "3")) for code in operation["responses"]), (method, path)
        ids = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert ids == set(re.findall(r"{(\w+)}", path)), (method, path)


def _toy_app() -> Flask:
    """Views declared the way the real ones are, to see what the builder adds to them."""
    bp = Blueprint("toy", __name__, url_prefix="/v1/merchants/<int:merchant_id>")

    @bp.post("/things/<name>")
    @require("publish")
    def post_thing(merchant_id: int, name: str) -> dict[str, Any]:
        """
        ---
        post:
          summary: A thing
          requestBody:
            content: {application/json: {schema: {type: object}}}
          responses:
            201: {description: made}
            404: {description: no such merchant's thing}
        """
        return {}

    @bp.get("/pops/<int:pop_id>")
    @require_pop
    def get_pop(merchant_id: int, pop_id: int) -> dict[str, Any]:
        """
        ---
        get:
          summary: A PoP
          parameters:
            - {name: pop_id, in: path, schema: {type: integer, minimum: 1}}
          responses:
            200: {description: it}
        """
        return {}

    @bp.get("/nothing")
    @public
    def nothing(merchant_id: int) -> dict[str, Any]:
        """No contract."""
        return {}

    app = Flask(__name__)
    app.register_blueprint(bp)
    return app


def test_the_builder_fills_in_what_the_code_says() -> None:
    app = _toy_app()
    document = openapi.build(app)
    thing = document["paths"]["/v1/merchants/{merchant_id}/things/{name}"]["post"]
    assert thing["operationId"] == "post_thing" and thing["tags"] == ["toy"]
    assert thing["parameters"] == [
        {"name": "merchant_id", "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}},
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert thing["security"] == [{"merchantToken": ["publish"]}]
    responses = thing["responses"]
    assert responses["404"] == {"description": "no such merchant's thing"}  # the view's wins
    assert {code: responses[code]["$ref"].rpartition("/")[2]
            for code in ("401", "403", "413", "422")} == {
        "401": "Unauthorized", "403": "Forbidden", "413": "TooLarge", "422": "Invalid"}

    pop = document["paths"]["/v1/merchants/{merchant_id}/pops/{pop_id}"]["get"]
    assert pop["security"] == [{"popSecret": []}]
    assert [p["schema"].get("minimum") for p in pop["parameters"]] == [1, 0]
    assert {"401", "403", "404"} <= set(pop["responses"]) and "422" not in pop["responses"]

    assert openapi.undocumented(app, document) == ["GET /v1/merchants/<int:merchant_id>/nothing"]


def test_a_converter_it_does_not_know_is_refused() -> None:
    app = Flask(__name__)

    @app.get("/at/<any(a, b):which>")
    @public
    def at(which: str) -> str:
        """
        ---
        get: {summary: x, responses: {200: {description: y}}}
        """
        return which

    with pytest.raises(ValueError, match="any converter"):
        openapi.build(app)


def test_openapi_path() -> None:
    assert openapi.openapi_path("/v1/m/<int:merchant_id>/x/<name>/<path(x=1):rest>") == \
        "/v1/m/{merchant_id}/x/{name}/{rest}"
    assert openapi.openapi_path("/healthz") == "/healthz"


def test_the_document_is_built_once(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    first = client.get("/openapi.json").get_json()

    def fail(app: Flask) -> dict[str, Any]:
        raise AssertionError("built again")

    monkeypatch.setattr(openapi, "build", fail)
    assert client.get("/openapi.json").get_json() == first
