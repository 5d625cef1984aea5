"""Receipts, the wallet ledger (journals and postings), claim tokens and throttles.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)  # spelled out, as in 0001


def upgrade() -> None:
    op.create_table(
        "throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("max_claims", sa.Integer(), nullable=True),
        sa.Column("max_amount", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_throttles_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_throttles")),
        sa.UniqueConstraint("merchant_id", "scope", name=op.f("uq_throttles_merchant_id_scope")),
    )
    with op.batch_alter_table("throttles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_throttles_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("pop_id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("prev", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("release_hash", sa.String(length=71), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_receipts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["pop_id"], ["pops.id"], name=op.f("fk_receipts_pop_id_pops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint(
            "merchant_id", "receipt_id", name=op.f("uq_receipts_merchant_id_receipt_id")
        ),
        sa.UniqueConstraint("pop_id", "seq", name=op.f("uq_receipts_pop_id_seq")),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_receipts_customer"), ["customer"], unique=False)
        batch_op.create_index(batch_op.f("ix_receipts_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_receipts_pop_id"), ["pop_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_receipts_status"), ["status"], unique=False)

    op.create_table(
        "claim_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", TIME, nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_claim_tokens_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["receipt_id"], ["receipts.id"], name=op.f("fk_claim_tokens_receipt_id_receipts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_tokens")),
        sa.UniqueConstraint(
            "merchant_id", "token_hash", name=op.f("uq_claim_tokens_merchant_id_token_hash")
        ),
    )
    with op.batch_alter_table("claim_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_claim_tokens_merchant_id"), ["merchant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_claim_tokens_receipt_id"), ["receipt_id"], unique=False
        )

    op.create_table(
        "journals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_journals_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["receipt_id"], ["receipts.id"], name=op.f("fk_journals_receipt_id_receipts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journals")),
    )
    with op.batch_alter_table("journals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journals_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_journals_receipt_id"), ["receipt_id"], unique=False)

    op.create_table(
        "postings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journal_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("toward", sa.Text(), nullable=True),
        sa.Column("vests_at", TIME, nullable=True),
        sa.Column("lapses_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["journals.id"], name=op.f("fk_postings_journal_id_journals")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_postings_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_postings_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_postings_journal_id"), ["journal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_postings_merchant_id"), ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_postings_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_postings_journal_id"))
        batch_op.drop_index(batch_op.f("ix_postings_account"))

    op.drop_table("postings")
    with op.batch_alter_table("journals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journals_receipt_id"))
        batch_op.drop_index(batch_op.f("ix_journals_merchant_id"))

    op.drop_table("journals")
    with op.batch_alter_table("claim_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claim_tokens_receipt_id"))
        batch_op.drop_index(batch_op.f("ix_claim_tokens_merchant_id"))

    op.drop_table("claim_tokens")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_receipts_status"))
        batch_op.drop_index(batch_op.f("ix_receipts_pop_id"))
        batch_op.drop_index(batch_op.f("ix_receipts_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_receipts_customer"))

    op.drop_table("receipts")
    with op.batch_alter_table("throttles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_throttles_merchant_id"))

    op.drop_table("throttles")
