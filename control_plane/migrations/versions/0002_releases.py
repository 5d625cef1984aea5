"""Program versions, releases and their rollouts, PoPs and their enrollment, coupon codes and
redemption state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)  # spelled out, as in 0001


def upgrade() -> None:
    op.create_table(
        "coupon_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("program_name", sa.String(length=100), nullable=False),
        sa.Column("set_id", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=32), nullable=False),
        sa.Column("issued_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_coupon_codes_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_codes")),
        sa.UniqueConstraint(
            "merchant_id", "code_hash", name=op.f("uq_coupon_codes_merchant_id_code_hash")
        ),
    )
    with op.batch_alter_table("coupon_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupon_codes_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "pops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("last_seen_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_pops_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pops")),
        sa.UniqueConstraint("merchant_id", "name", name=op.f("uq_pops_merchant_id_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pops_token_hash")),
    )
    with op.batch_alter_table("pops", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pops_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "redemption_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_redemption_snapshots_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption_snapshots")),
        sa.UniqueConstraint(
            "merchant_id", "version", name=op.f("uq_redemption_snapshots_merchant_id_version")
        ),
    )
    with op.batch_alter_table("redemption_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_redemption_snapshots_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("program_name", sa.String(length=100), nullable=False),
        sa.Column("set_id", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_redemptions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemptions")),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redemptions_code_hash"), ["code_hash"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_redemptions_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("pop_name", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        sa.Column("pop_id", sa.Integer(), nullable=True),
        sa.Column("created_by_token_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_enrollment_tokens_created_by_token_id_api_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_enrollment_tokens_merchant_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["pop_id"], ["pops.id"], name=op.f("fk_enrollment_tokens_pop_id_pops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_enrollment_tokens_token_hash")),
    )
    with op.batch_alter_table("enrollment_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollment_tokens_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "program_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("program_name", sa.String(length=100), nullable=False),
        sa.Column("program", sa.Text(), nullable=False),
        sa.Column("program_format", sa.String(length=8), nullable=False),
        sa.Column("catalog", sa.Text(), nullable=False),
        sa.Column("catalog_format", sa.String(length=8), nullable=False),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by_token_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_program_versions_created_by_token_id_api_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_program_versions_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_versions")),
        sa.UniqueConstraint(
            "merchant_id", "number", name=op.f("uq_program_versions_merchant_id_number")
        ),
    )
    with op.batch_alter_table("program_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_program_versions_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.Column("release_hash", sa.String(length=71), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("bundle", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by_token_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_releases_created_by_token_id_api_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_releases_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["program_versions.id"],
            name=op.f("fk_releases_version_id_program_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("merchant_id", "number", name=op.f("uq_releases_merchant_id_number")),
    )
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_releases_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_releases_version_id"), ["version_id"], unique=False)

    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by_token_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_rollouts_created_by_token_id_api_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_rollouts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name=op.f("fk_rollouts_release_id_releases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollouts_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rollouts_release_id"), ["release_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollouts_release_id"))
        batch_op.drop_index(batch_op.f("ix_rollouts_merchant_id"))

    op.drop_table("rollouts")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_releases_version_id"))
        batch_op.drop_index(batch_op.f("ix_releases_merchant_id"))

    op.drop_table("releases")
    with op.batch_alter_table("program_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_program_versions_merchant_id"))

    op.drop_table("program_versions")
    with op.batch_alter_table("enrollment_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_tokens_merchant_id"))

    op.drop_table("enrollment_tokens")
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redemptions_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_redemptions_code_hash"))

    op.drop_table("redemptions")
    with op.batch_alter_table("redemption_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redemption_snapshots_merchant_id"))

    op.drop_table("redemption_snapshots")
    with op.batch_alter_table("pops", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pops_merchant_id"))

    op.drop_table("pops")
    with op.batch_alter_table("coupon_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_codes_merchant_id"))

    op.drop_table("coupon_codes")
