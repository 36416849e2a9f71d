"""The alert outbox (alert_deliveries) and the alert pass's read positions (alert_cursors).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("pipeline", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_alert_deliveries_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
        sa.UniqueConstraint("key", name=op.f("uq_alert_deliveries_key")),
    )
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_deliveries_status_next_at"), ["status", "next_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alert_deliveries_rule_created_at"), ["rule", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alert_deliveries_run_id"), ["run_id"], unique=False)
    op.create_table(
        "alert_cursors",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("position", _ID, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_cursors")),
    )


def downgrade() -> None:
    op.drop_table("alert_cursors")
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_deliveries_run_id"))
        batch_op.drop_index(batch_op.f("ix_alert_deliveries_rule_created_at"))
        batch_op.drop_index(batch_op.f("ix_alert_deliveries_status_next_at"))
    op.drop_table("alert_deliveries")
