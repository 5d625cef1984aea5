"""The control plane's settings: from `create_app`'s argument first, then the environment,
then defaults under the Flask instance directory (so a bare start needs no set-up)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_CONTENT_LENGTH = 16 * 1024 * 1024  # a large catalog fits; a runaway upload does not

#: The settings this module reads; every other key of the argument goes to Flask's config.
KEYS = ("DATABASE_URL", "POPRULES_KEY_DIR", "POPRULES_SIGNING_KEY", "MAX_CONTENT_LENGTH")


class ConfigError(RuntimeError):
    """A setting or state the control plane cannot start with; the message says which, why
    and what to do."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    key_dir: Path
    signing_key: Path | None  # the operator's own key file; none: generate one in key_dir
    max_content_length: int

    @classmethod
    def load(cls, given: Mapping[str, Any] | None, environ: Mapping[str, str],
             instance_dir: Path) -> Settings:
        def setting(key: str) -> Any:
            if given is not None and given.get(key) is not None:
                return given[key]
            return environ.get(key) or None

        database = setting("DATABASE_URL") or f"sqlite:///{instance_dir / 'poprules.db'}"
        key_dir = Path(setting("POPRULES_KEY_DIR") or instance_dir / "keys")
        signing_key = setting("POPRULES_SIGNING_KEY")
        return cls(
            database_url=str(database),
            key_dir=key_dir,
            signing_key=Path(signing_key) if signing_key else None,
            max_content_length=_positive_int(setting("MAX_CONTENT_LENGTH"),
                                             DEFAULT_MAX_CONTENT_LENGTH),
        )


def _positive_int(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise ConfigError(f"MAX_CONTENT_LENGTH must be a positive number of bytes, not {value!r}")
    return number
