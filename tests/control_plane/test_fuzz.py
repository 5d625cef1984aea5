"""Schemathesis against the app's own /openapi.json, through WSGI (no server): every
operation, with valid and invalid input, as a merchant holding every scope (or its PoP, where
a PoP calls), on its own merchant and PoP, so requests get past authentication. No answer may be a 5xx, every error must be the documented envelope, and
every answer must match what the document says (status, content type, schema).

SQLite only: the point is the API's handling of input, which does not depend on the
database. The number of examples per operation is bounded: the whole run takes some 15 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from nacl.signing import SigningKey
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from control_plane.pop_auth import new_pop_token
from control_plane.storage.models import Pop
from tests.control_plane.conftest import Plane, start_app

EXAMPLES = 25  # per operation and generation mode
# Two checks judge input, not answers, and cannot know this API's rules: one wants a 4xx for
# a parameter that does not apply to the request (audit's `limit` with format=csv, ignored on
# purpose), the other a 2xx for anything the schema allows, where a program that does not
# compile or a rollback to what runs already is rightly 422. Every answer is still checked:
# never a 5xx, always the documented status, content type, schema and error envelope.
EXCLUDED = [negative_data_rejection, positive_data_acceptance]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = start_app(f"sqlite:///{tmp_path / 'poprules.db'}", tmp_path / "keys")
    yield app
    app.extensions["poprules"].db.dispose()


def _envelope(response: schemathesis.Response) -> str | None:
    """What is wrong with an error answer, or None."""
    if response.status_code < 400:
        return None
    if not response.headers.get("content-type", [""])[0].startswith("application/json"):
        return f"not JSON: {response.headers.get('content-type')}"
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if set(body) != {"error"} or not isinstance(error, dict) \
            or not {"field", "message"} <= set(error) \
            or not isinstance(error["message"], str) \
            or not (error["field"] is None or isinstance(error["field"], str)):
        return f"not the error envelope: {body!r}"
    return None


def _pop(plane: Plane, merchant_id: int) -> tuple[int, str]:
    """An enrolled PoP of the merchant: its id and its secret."""
    secret, digest = new_pop_token()
    with plane.state.db.session() as session:
        pop = Pop(merchant_id=merchant_id, name="fuzz-pop", group="*",
                  public_key=SigningKey.generate().verify_key.encode().hex(), token_hash=digest)
        session.add(pop)
        session.commit()
        return pop.id, secret


def _uses_pop_secret(operation: schemathesis.APIOperation) -> bool:
    return any("popSecret" in requirement
               for requirement in operation.definition.raw.get("security", []))


def test_fuzz_every_operation(app: Flask) -> None:
    plane = Plane(app)
    account = plane.merchant("fuzz")
    pop_id, pop_secret = _pop(plane, account.merchant_id)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)

    @schema.auth(refresh_interval=None)
    class Credentials:
        """The merchant's, a new token with every scope for each request (a fuzzed DELETE
        may revoke the one before), or the PoP's secret where a PoP is the caller."""

        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            if _uses_pop_secret(context.operation):
                return pop_secret
            return plane.token(account.merchant_id, "publish", "read", "audit")

        def set(self, case: schemathesis.Case, data: str,
                context: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    owners = {"merchant_id": account.merchant_id, "pop_id": pop_id}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        # Their own merchant and PoP, or every request would stop at 403.
        own = {p.name: owners[p.name] for p in operation.path_parameters if p.name in owners}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=own)

            @given(case=strategy)
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case: schemathesis.Case) -> None:
                response = case.call_and_validate(excluded_checks=EXCLUDED)
                problem = _envelope(response)
                assert problem is None, f"{case.method} {case.formatted_path}: {problem}"

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no input to make invalid
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - gather them all
                notes = "\n".join(getattr(exc, "__notes__", []))
                failures.append(f"{operation.label} ({mode.value}): {exc}\n{notes}")
    assert not failures, "\n\n".join(failures)
