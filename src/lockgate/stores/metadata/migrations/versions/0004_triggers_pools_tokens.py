"""triggers pools tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 05:35:14.017357
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "pools",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pools")),
    )
    op.create_table(
        "tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("hash", name=op.f("uq_tokens_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_tokens_name")),
    )
    op.create_table(
        "pool_leases",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("pool", sa.String(length=100), nullable=False),
        sa.Column(
            "task_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("acquired_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_pool_leases_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_runs.id"], name=op.f("fk_pool_leases_task_run_id_task_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_leases")),
        sa.UniqueConstraint("task_run_id", name=op.f("uq_pool_leases_task_run_id")),
    )
    with op.batch_alter_table("pool_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pool_leases_pool"), ["pool"], unique=False)

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trigger_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("logical_date", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_runs_pipeline_id_trigger_key"), ["pipeline_id", "trigger_key"]
        )


def downgrade() -> None:

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_runs_pipeline_id_trigger_key"), type_="unique")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("logical_date")
        batch_op.drop_column("trigger_key")

    with op.batch_alter_table("pool_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pool_leases_pool"))

    op.drop_table("pool_leases")
    op.drop_table("tokens")
    op.drop_table("pools")
