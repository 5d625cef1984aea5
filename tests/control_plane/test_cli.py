"""`poprules cp bootstrap`: the first merchant and its token, printed once."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from poprules.cli import main
from tests.control_plane.conftest import Plane, start_app


def _bootstrap(database: str, key_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["cp", "bootstrap", *args],
                              env={"DATABASE_URL": database, "POPRULES_KEY_DIR": str(key_dir)})


def test_bootstrap_prints_a_working_token_once(migrated: str, tmp_path: Path) -> None:
    result = _bootstrap(migrated, tmp_path / "keys", "--merchant", "  Corner Market ")
    assert result.exit_code == 0, result.output
    first, second, token = result.output.splitlines()
    assert first == "merchant 1: Corner Market"
    assert second == "token 1 (publish, read, audit), shown this once; keep it secret:"
    app = start_app(migrated, tmp_path / "keys")
    try:
        plane = Plane(app)
        assert plane.call("GET", "/v1/merchants/1", token).get_json()["name"] == "Corner Market"
        events = plane.call("GET", "/v1/audit", token).get_json()["events"]
        assert [(e["kind"], e["actor"]) for e in events] == [
            ("key.created", "operator"), ("merchant.created", "operator"),
            ("token.created", "operator")]
        assert token not in str(events)
    finally:
        app.extensions["poprules"].db.dispose()


def test_bootstrap_refuses_a_taken_or_blank_name(migrated: str, tmp_path: Path) -> None:
    assert _bootstrap(migrated, tmp_path / "keys", "--merchant", "alpha").exit_code == 0
    taken = _bootstrap(migrated, tmp_path / "keys", "--merchant", "alpha")
    assert taken.exit_code == 2 and "exists already" in taken.output
    blank = _bootstrap(migrated, tmp_path / "keys", "--merchant", " ")
    assert blank.exit_code == 2 and "non-blank" in blank.output
    assert _bootstrap(migrated, tmp_path / "keys", "--merchant", "beta").output.startswith(
        "merchant 2: beta")


def test_bootstrap_on_an_unmigrated_postgresql_says_what_to_do(database: str,
                                                               tmp_path: Path) -> None:
    result = _bootstrap(database, tmp_path / "keys", "--merchant", "alpha")
    if database.startswith("sqlite"):
        assert result.exit_code == 0  # SQLite migrates itself
    else:
        assert result.exit_code == 2
        assert "run `poprules cp migrate`" in result.output and "Traceback" not in result.output
