"""The API's OpenAPI 3.1 document, built from the app itself so that it cannot drift from the
routes: every rule of the URL map is a path and its methods are the operations.

Each view declares its own contract next to its code, as YAML after `---` in its docstring
(apispec's convention), one key per method:

    @bp.get("/<int:merchant_id>/tokens/<int:token_id>")
    @require("read")
    def get_token(merchant_id: int, token_id: int) -> dict[str, Any]:
        \"\"\"Why it is written this way, for the next reader.
        ---
        get:
          summary: One token (never its secret)
          responses:
            200: {description: The token, content: {application/json: {schema: Token}}}
        \"\"\"

Schemas several views share go after `---` in their module's docstring, under `schemas:`,
and are named by a bare string where a schema goes (`schema: Token`, `items: Token`).

What the code already says is filled in here, so no view repeats it: the security
requirement and the 401/403 answers from `@require`, `@require_pop` or `@public`; the path
parameters (typed by their converters) and a 404 from the rule; 413 and 422 for an
operation that takes a body, 422 for one with query parameters. A view's own entries win.
tests/control_plane/test_openapi.py fails on any route without a contract, and
test_fuzz.py holds the answers to the document.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

from apispec import APISpec
from apispec.yaml_utils import load_operations_from_docstring, load_yaml_from_docstring
from flask import Flask
from werkzeug.routing import Rule

from control_plane.auth import SCOPES
from control_plane.wire import MAX_ID

OPENAPI_VERSION = "3.1.0"
MERCHANT_TOKEN = "merchantToken"
POP_SECRET = "popSecret"
UNDOCUMENTED_METHODS = frozenset({"HEAD", "OPTIONS"})  # Werkzeug answers these itself
OWNER_ARGS = frozenset({"merchant_id", "pop_id"})

# A route variable: <name> or <converter:name> or <converter(args):name> (Werkzeug's syntax).
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_PARAMETER_SCHEMAS: dict[str, dict[str, Any]] = {
    "default": {"type": "string"},
    "string": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}

_ERROR = {"content": {"application/json": {"schema": "Error"}}}

COMPONENTS: dict[str, dict[str, Any]] = {
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": {
                "type": "object",
                "required": ["field", "message"],
                "additionalProperties": False,
                "properties": {
                    "field": {"type": ["string", "null"],
                              "description": "The part of the request at fault (`scopes[1]`, "
                                             "`since`, `body`, ...); null when it is the whole "
                                             "request."},
                    "message": {"type": "string"},
                    # Where, for an error in an uploaded program, catalog or request:
                    "source": {"type": "string",
                               "description": "Which upload: program, catalog, samples or "
                                              "requests."},
                    "rule": {"type": "string"},
                    "line": {"type": "integer"},
                    "column": {"type": "integer"},
                    "text": {"type": "string"},
                },
            }},
        },
    },
    "responses": {
        "Unauthorized": {
            "description": "No credential, a malformed Authorization header, or an unknown or "
                           "revoked one.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            **_ERROR,
        },
        "Forbidden": {
            "description": "The credential lacks the operation's scope, or the path names "
                           "another merchant or PoP (whether or not it exists).",
            **_ERROR,
        },
        "NotFound": {"description": "No such resource.", **_ERROR},
        "TooLarge": {"description": "The body is over the server's MAX_CONTENT_LENGTH.",
                     **_ERROR},
        "Invalid": {"description": "Invalid input; `field` names it.", **_ERROR},
    },
    "securitySchemes": {
        MERCHANT_TOKEN: {
            "type": "http", "scheme": "bearer", "bearerFormat": "prt_<43 base64url characters>",
            "description": "A merchant's API token. The requirement lists the scope the "
                           "operation needs: publish, read or audit.",
        },
        POP_SECRET: {
            "type": "http", "scheme": "bearer", "bearerFormat": "prp_<43 base64url characters>",
            "description": "The secret a PoP received when it enrolled.",
        },
    },
}


def build(app: Flask) -> dict[str, Any]:
    """The document for `app`: its routes, with the contracts their views declare."""
    spec = APISpec(
        title="poprules control plane", version=version("poprules"),
        openapi_version=OPENAPI_VERSION,
        info={"description": "Merchants' programs, releases, PoPs and coupon state. Every "
                             "error is {\"error\": {\"field\", \"message\"}}."},
    )
    for name, schema in COMPONENTS["schemas"].items():
        spec.components.schema(name, copy.deepcopy(schema))
    for name, response in COMPONENTS["responses"].items():
        spec.components.response(name, copy.deepcopy(response))
    for name, scheme in COMPONENTS["securitySchemes"].items():
        spec.components.security_scheme(name, copy.deepcopy(scheme))
    rules = list(_rules(app))
    for name, schema in _module_schemas(app, rules).items():
        spec.components.schema(name, schema)
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        declared = load_operations_from_docstring(view.__doc__ or "")
        operations = {method: _complete(declared[method], rule, view)
                      for method in _methods(rule) if method in declared}
        if operations:
            spec.path(openapi_path(rule.rule), operations=operations)
    document: dict[str, Any] = spec.to_dict()
    return document


def undocumented(app: Flask, document: dict[str, Any]) -> list[str]:
    """`METHOD rule` for each operation of the URL map that `document` lacks."""
    paths = document.get("paths", {})
    return [f"{method.upper()} {rule.rule}" for rule in _rules(app) for method in _methods(rule)
            if method not in paths.get(openapi_path(rule.rule), {})]


def openapi_path(rule: str) -> str:
    """`/v1/merchants/<int:merchant_id>` -> `/v1/merchants/{merchant_id}`."""
    return _VARIABLE.sub(lambda match: "{" + match["name"] + "}", rule)


#: Blueprints of HTML pages (control_plane/console): not API operations, not documented.
PAGE_BLUEPRINTS = frozenset({"console", "claim"})


def documented(rule: Rule) -> bool:
    """Whether a rule is an API operation the document must hold: not Flask's static files
    nor an HTML page."""
    return rule.endpoint != "static" and rule.endpoint.partition(".")[0] not in PAGE_BLUEPRINTS


def _rules(app: Flask) -> Iterator[Rule]:
    return (rule for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
            if documented(rule))


def _methods(rule: Rule) -> list[str]:
    return sorted(m.lower() for m in (rule.methods or ()) if m not in UNDOCUMENTED_METHODS)


def _module_schemas(app: Flask, rules: list[Rule]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    owners: dict[str, str] = {}
    modules = dict.fromkeys(app.view_functions[rule.endpoint].__module__ for rule in rules)
    for name in modules:
        module = sys.modules[name]
        for schema_name, schema in load_yaml_from_docstring(module.__doc__ or "").get(
                "schemas", {}).items():
            if schema_name in schemas or schema_name in COMPONENTS["schemas"]:
                raise ValueError(f"{name} declares schema {schema_name!r}, which "
                                 f"{owners.get(schema_name, __name__)} declares already")
            schemas[schema_name], owners[schema_name] = schema, name
    return schemas


def _complete(declared: dict[str, Any], rule: Rule, view: Any) -> dict[str, Any]:
    operation = copy.deepcopy(declared)
    blueprint, _, function = rule.endpoint.rpartition(".")
    operation.setdefault("operationId", function)
    if blueprint:
        operation.setdefault("tags", [blueprint])
    parameters = operation.setdefault("parameters", [])
    named = {(p["name"], p["in"]) for p in parameters}
    for match in _VARIABLE.finditer(rule.rule):
        if (match["name"], "path") not in named:
            schema = _PARAMETER_SCHEMAS.get(match["converter"] or "default")
            if schema is None:
                raise ValueError(f"{rule.rule}: teach openapi.py the {match['converter']} "
                                 "converter's schema")
            parameters.append({"name": match["name"], "in": "path", "required": True,
                               "schema": copy.deepcopy(schema)})
    if not parameters:
        del operation["parameters"]

    responses = {str(code): answer for code, answer in operation.get("responses", {}).items()}
    operation["responses"] = responses
    scope = getattr(view, "required_scope", None)
    if getattr(view, "public", False):
        operation.setdefault("security", [])
    elif scope is not None:
        scheme = POP_SECRET if scope == "pop" else MERCHANT_TOKEN
        operation.setdefault("security", [{scheme: [scope] if scope in SCOPES else []}])
        responses.setdefault("401", "Unauthorized")
        if scope in SCOPES or OWNER_ARGS & rule.arguments:
            responses.setdefault("403", "Forbidden")
    if rule.arguments:
        responses.setdefault("404", "NotFound")
    if "requestBody" in operation:
        responses.setdefault("413", "TooLarge")
    if "requestBody" in operation or any(p.get("in") == "query" for p in parameters):
        responses.setdefault("422", "Invalid")
    return operation
