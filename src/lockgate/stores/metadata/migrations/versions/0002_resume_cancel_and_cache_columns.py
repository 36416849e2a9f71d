"""resume, cancel, cache and log-span columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 03:51:39.727819
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_path", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("log_start", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("log_end", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pipeline_ref", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.Double(), nullable=True))

    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("cache_inputs", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "cached_from", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_index(batch_op.f("ix_task_runs_cache_key"), ["cache_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_task_runs_task_name_finished_at"),
            ["task_name", "finished_at"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_task_runs_cached_from_task_runs"), "task_runs", ["cached_from"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("log_end")
        batch_op.drop_column("log_start")
        batch_op.drop_column("log_path")

    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_task_runs_cached_from_task_runs"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_task_runs_task_name_finished_at"))
        batch_op.drop_index(batch_op.f("ix_task_runs_cache_key"))
        batch_op.drop_column("cached_from")
        batch_op.drop_column("cache_inputs")
        batch_op.drop_column("cache_key")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("pipeline_ref")
