"""Routes, their change log, the gateway's samples and live feedback.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("mirror", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_routes")),
    )
    op.create_table(
        "route_changes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["route"], ["routes.name"], name=op.f("fk_route_changes_route_routes")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_route_changes_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_changes")),
        sa.UniqueConstraint("route", "version", name=op.f("uq_route_changes_route_version")),
    )
    with op.batch_alter_table("route_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_route_changes_run_id"), ["run_id"], unique=False)
    op.create_table(
        "gateway_samples",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("cohort", sa.String(length=10), nullable=False),
        sa.Column("route_version", sa.Integer(), nullable=False),
        sa.Column("latency_s", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_samples")),
    )
    with op.batch_alter_table("gateway_samples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_samples_route_at"), ["route", "at"], unique=False
        )
    op.create_table(
        "route_feedback",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_feedback")),
    )
    with op.batch_alter_table("route_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_route_feedback_route_request_id"), ["route", "request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("route_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_route_feedback_route_request_id"))
    op.drop_table("route_feedback")
    with op.batch_alter_table("gateway_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_samples_route_at"))
    op.drop_table("gateway_samples")
    with op.batch_alter_table("route_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_route_changes_run_id"))
    op.drop_table("route_changes")
    op.drop_table("routes")
