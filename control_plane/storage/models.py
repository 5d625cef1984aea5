"""The control plane's tables.

Times are stored in UTC and always come back timezone-aware, on SQLite (which has no time
zones) as on PostgreSQL, so comparisons and the audit trail's filters mean the same on both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime; a naive one is refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime cannot be stored; give it a time zone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Named constraints, so migrations can refer to them on every database.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(),
                                                     dict[str, Any]: JSON(),
                                                     list[Any]: JSON(), bytes: LargeBinary()}


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="merchant",
                                                  order_by="ApiToken.id")


class ApiToken(Base):
    """A merchant's API token. Only the SHA-256 of the secret is kept: the secret is shown
    once, when the token is made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(100))  # space-separated, sorted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    merchant: Mapped[Merchant] = relationship(back_populates="tokens")

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class AuditEvent(Base):
    """One token, key (and later publish or rollback) event. `actor_token_id` is null when
    the operator acted through the CLI; `merchant_id` is null for events of the control
    plane itself, such as a key rotation."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    actor_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    @property
    def actor(self) -> str:
        return "operator" if self.actor_token_id is None else f"token:{self.actor_token_id}"


class SigningKey(Base):
    """The public half and metadata of a signing key; the private half lives in the key
    directory, never in the database. Retired keys stay, so old signatures still verify."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one current key, even when two hosts start on an empty database at once.
        Index("uq_signing_keys_current", "is_current", unique=True,
              sqlite_where=text("is_current"), postgresql_where=text("is_current")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))  # hex of the 32-byte Ed25519 key
    is_current: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProgramVersion(Base):
    """A draft: a program and its catalog as the merchant uploaded them, checked, with the
    sample requests that simulate, diff and publish run. Kept as text, so what was published
    can always be shown and rebuilt."""

    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("merchant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    number: Mapped[int]  # 1, 2, ... per merchant
    program_name: Mapped[str] = mapped_column(String(100))
    program: Mapped[str] = mapped_column(Text)
    program_format: Mapped[str] = mapped_column(String(8))  # yaml | json
    catalog: Mapped[str] = mapped_column(Text)
    catalog_format: Mapped[str] = mapped_column(String(8))  # json | csv
    samples: Mapped[list[Any]] = mapped_column(default=list)  # spec section 8 requests
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))


class Release(Base):
    """A signed bundle. Numbers only grow per merchant, so a PoP never accepts a lower one:
    a rollback is a new release that carries an earlier one's content."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("merchant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    number: Mapped[int]
    version_id: Mapped[int] = mapped_column(ForeignKey("program_versions.id"), index=True)
    rollback_of: Mapped[int | None]  # the release number whose content this one carries
    release_hash: Mapped[str] = mapped_column(String(71))  # sha256:<64 hex>
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    # Loaded only when read: a megabyte at 1,000 rules, and most queries (a PoP's poll that
    # ends in 304, a listing) need the other columns alone.
    bundle: Mapped[bytes] = mapped_column(deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))


class Rollout(Base):
    """Which release a group of PoPs runs: a PoP runs the highest-numbered release rolled out
    to its group or to every PoP (`group` = "*"), so a canary goes first and "*" follows."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    group: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))


class Pop(Base):
    """An enrolled point of presence: its own Ed25519 key (receipts) and the hash of the
    secret it pulls with."""

    __tablename__ = "pops"
    __table_args__ = (UniqueConstraint("merchant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))  # hex of the 32-byte Ed25519 key
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]


class EnrollmentToken(Base):
    """A one-time secret a merchant hands to a new PoP; only its SHA-256 is kept."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pop_name: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    pop_id: Mapped[int | None] = mapped_column(ForeignKey("pops.id"))
    created_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))


class CouponCode(Base):
    """A code the control plane generated for a `generate` set: only its keyed hash."""

    __tablename__ = "coupon_codes"
    __table_args__ = (UniqueConstraint("merchant_id", "code_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    program_name: Mapped[str] = mapped_column(String(100))
    set_id: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(32))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class Redemption(Base):
    """A code used in a booked checkout; counted against max_redemptions and per_customer."""

    __tablename__ = "redemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    program_name: Mapped[str] = mapped_column(String(100))
    set_id: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(32), index=True)
    customer: Mapped[str | None] = mapped_column(String(64))  # a customer token's subject hash
    at: Mapped[datetime] = mapped_column(default=utcnow)


class RedemptionSnapshot(Base):
    """A signed, versioned state of a merchant's codes that PoPs pull like releases."""

    __tablename__ = "redemption_snapshots"
    __table_args__ = (UniqueConstraint("merchant_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    version: Mapped[int]
    body: Mapped[bytes]  # canonical JSON, what the signature covers
    digest: Mapped[str] = mapped_column(String(71))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Receipt(Base):
    """A receipt a PoP signed (docs/receipts.md), kept as the exact bytes it signed.

    `status`: booked (in the ledger), flagged (refused: a bad chain link, amounts that the
    release does not reproduce, a forged or altered receipt) or held (valid, but over a
    throttle or a coupon limit: waits for review). Never booked twice: `receipt_id` is
    unique per merchant, so a replay finds the first."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("merchant_id", "receipt_id"),
                      UniqueConstraint("pop_id", "seq"))

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    pop_id: Mapped[int] = mapped_column(ForeignKey("pops.id"), index=True)
    receipt_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int]
    prev: Mapped[str] = mapped_column(String(64))  # hex sha256 of the previous receipt's body
    digest: Mapped[str] = mapped_column(String(64))  # hex sha256 of this body
    kind: Mapped[str] = mapped_column(String(16))  # sale | refund
    release_hash: Mapped[str] = mapped_column(String(71))
    customer: Mapped[str | None] = mapped_column(String(64), index=True)
    body: Mapped[bytes] = mapped_column(deferred=True)
    signature: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)  # booked | flagged | held
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Journal(Base):
    """One balanced movement of the wallet ledger: its postings sum to zero. Append-only;
    balances are sums of postings, never stored."""

    __tablename__ = "journals"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # cashback | credit | points | reversal | claim
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Posting(Base):
    """A line of a journal on one account: `customer:<hash>:<wallet|credit|points>`,
    `claim:<hash>:wallet` (cashback an anonymous shopper may claim) or `merchant:<what>`.
    Cashback is pending before `vests_at`, available until `lapses_at`, lapsed after."""

    __tablename__ = "postings"

    id: Mapped[int] = mapped_column(primary_key=True)
    journal_id: Mapped[int] = mapped_column(ForeignKey("journals.id"), index=True)
    # So a journal and its postings are written in one flush, not one flush per journal.
    journal: Mapped[Journal] = relationship()
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    account: Mapped[str] = mapped_column(String(100), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units (points: points), signed
    rule: Mapped[str | None] = mapped_column(String(64))
    toward: Mapped[str | None] = mapped_column(Text)  # a credit's restriction
    vests_at: Mapped[datetime | None]
    lapses_at: Mapped[datetime | None]


class ClaimToken(Base):
    """An offline claim token a checkout showed as a QR code: only its hash; claimed once."""

    __tablename__ = "claim_tokens"
    __table_args__ = (UniqueConstraint("merchant_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    receipt_id: Mapped[int] = mapped_column(ForeignKey("receipts.id"), index=True)
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the customer's hash


class Throttle(Base):
    """A merchant's limit on claims and booked cashback per window, per customer, claim
    token or device hash; what exceeds it is held for review with its reason."""

    __tablename__ = "throttles"
    __table_args__ = (UniqueConstraint("merchant_id", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # customer | claim | device
    window_seconds: Mapped[int]
    max_claims: Mapped[int | None]
    max_amount: Mapped[int | None] = mapped_column(BigInteger)
