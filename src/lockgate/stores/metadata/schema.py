"""The metadata tables, as SQLAlchemy Core objects. Names are fixed in docs/glossary.md.

Portable SQL only: the same tables serve SQLite and PostgreSQL. Timestamps
are UTC epoch seconds (double precision) so that durations and percentiles
are plain arithmetic on both databases. `task_runs.map_index` is -1 for a
whole node because NULLs never collide in a unique constraint.
"""

from __future__ import annotations

import sqlalchemy as sa

# The Alembic revision these tables correspond to. A database at another
# revision is migrated (new) or refused with the command to run.
SCHEMA_REVISION = "0008"

WHOLE_NODE = -1

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time: sa.Double[float] = sa.Double()

pipelines = sa.Table(
    "pipelines",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", Time, nullable=False),
)

pipeline_versions = sa.Table(
    "pipeline_versions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("pipeline_id", Id, sa.ForeignKey("pipelines.id"), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("graph", sa.JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("pipeline_id", "version"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("pipeline_id", Id, sa.ForeignKey("pipelines.id"), nullable=False),
    sa.Column("pipeline_version_id", Id, sa.ForeignKey("pipeline_versions.id"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    # What started it, once: "cron:<tick>", "version:dataset:x@7", "message:<stream>:<id>".
    # Unique per pipeline, so two schedulers (or a retried trigger) create one run.
    sa.Column("trigger_key", sa.String(300)),
    # The schedule tick a run stands for (UTC epoch seconds), for scheduled runs.
    sa.Column("logical_date", Time),
    # The server that launched it (`lockgate server`), for queued runs.
    sa.Column("claimed_by", sa.String(200)),
    # How to load the pipeline's code again (absolute PATH:NAME or MODULE:NAME), for resume.
    sa.Column("pipeline_ref", sa.String(1000)),
    sa.Column("git_sha", sa.String(64)),
    sa.Column("git_dirty", sa.Boolean),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("started_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("heartbeat_at", Time),
    sa.Column("cancel_requested_at", Time),
    # The tamper-evidence chain: hash of the newest event and how many there are,
    # so an edited, deleted or truncated event trace is detected.
    sa.Column("events_head", sa.String(64)),
    sa.Column("event_count", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Index(None, "pipeline_id", "created_at"),
    sa.Index(None, "status"),
    sa.Index(None, "created_at"),
    sa.Index(None, "finished_at"),
    sa.UniqueConstraint("pipeline_id", "trigger_key"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("serializer", sa.String(20), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("type_name", sa.String(300), nullable=False),
    sa.Column("length", sa.Integer),
    sa.Column("inline", sa.LargeBinary),
    sa.Column("origin", sa.String(10), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index(None, "created_at"),
)

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("node_id", sa.String(200), nullable=False),
    sa.Column("map_index", sa.Integer, nullable=False),
    sa.Column("task_name", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("queued_at", Time),
    sa.Column("started_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("retry_at", Time),
    sa.Column("output_sha256", sa.String(64), sa.ForeignKey("artifacts.sha256")),
    sa.Column("error", sa.Text),
    # Caching: the key, what it was computed from (for `lockgate explain`), and
    # for a cache hit the task run whose output was reused.
    sa.Column("cache_key", sa.String(64)),
    sa.Column("cache_inputs", sa.JSON),
    sa.Column("cached_from", Id, sa.ForeignKey("task_runs.id")),
    sa.UniqueConstraint("run_id", "node_id", "map_index"),
    sa.Index(None, "cache_key"),
    sa.Index(None, "task_name", "finished_at"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("queued_at", Time, nullable=False),
    sa.Column("started_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("error_type", sa.String(300)),
    sa.Column("error_message", sa.Text),
    sa.Column("error_traceback", sa.Text),
    sa.Column("error_user", sa.Boolean),
    # Captured output: bytes [log_start, log_end) of log_path (a worker's log);
    # NULL when the attempt has its own file under the logs root.
    sa.Column("log_path", sa.String(1000)),
    sa.Column("log_start", sa.BigInteger),
    sa.Column("log_end", sa.BigInteger),
    sa.UniqueConstraint("task_run_id", "number"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id")),
    sa.Column("attempt", sa.Integer),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    # sha256 over the previous event's hash and this event's content.
    sa.Column("hash", sa.String(64)),
    sa.Index(None, "run_id", "id"),
    # Resumes of a metrics window's runs (`lockgate stats`) without reading their
    # other events; partial, so the hot path's event inserts barely pay for it.
    # Migration 0005 creates it partial on PostgreSQL too; naming `postgresql_where`
    # here would import SQLAlchemy's PostgreSQL dialect (and asyncio, ~30 ms) into
    # every command on SQLite, and databases are created by the migrations.
    sa.Index("ix_events_run_resumed", "run_id", sqlite_where=sa.text("kind = 'run_resumed'")),
)

artifact_versions = sa.Table(
    "artifact_versions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("artifacts.sha256"), nullable=False),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id")),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id")),
    # For models: the scores registered with the version, and whether they came
    # through a passing gate (promotion refuses ungated versions).
    sa.Column("metadata", sa.JSON),
    sa.Column("gated", sa.Boolean),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("kind", "name", "version"),
    sa.UniqueConstraint("kind", "name", "sha256"),
    sa.Index(None, "sha256"),
)

# The named versions a run consumed, resolved once when the run was created.
run_versions = sa.Table(
    "run_versions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("artifacts.sha256"), nullable=False),
    sa.Column("requested", sa.Integer),  # the version asked for; NULL = latest
    sa.UniqueConstraint("run_id", "kind", "name", "requested"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("kind", "name", "alias"),
)

# Append-only audit log of alias moves (promotions, rollbacks).
alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("previous_version", sa.Integer),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id")),
    sa.Column("reason", sa.Text),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Index(None, "kind", "name", "alias", "id"),
)

gate_decisions = sa.Table(
    "gate_decisions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id"), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("op", sa.String(4), nullable=False),
    sa.Column("threshold", sa.Double),
    sa.Column("expression", sa.String(300), nullable=False),
    sa.Column("baseline_alias", sa.String(100)),
    sa.Column("baseline_version", sa.Integer),
    sa.Column("baseline_value", sa.Double),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("at", Time, nullable=False),
    sa.Index(None, "run_id"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id"), nullable=False),
    sa.Column("decision", sa.String(10), nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("at", Time, nullable=False),
    sa.UniqueConstraint("task_run_id"),
)

lineage_edges = sa.Table(
    "lineage_edges",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id"), nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("artifacts.sha256"), nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.UniqueConstraint("task_run_id", "sha256", "direction"),
    # (sha256, direction): a dataset consumed by thousands of runs is found as
    # produced by its one maker without reading every consumer's edge.
    sa.Index(None, "sha256", "direction"),
)


# Slots of named pools held by running task attempts (`[pools] gpu = 1`).
pool_leases = sa.Table(
    "pool_leases",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("pool", sa.String(100), nullable=False),
    sa.Column("task_run_id", Id, sa.ForeignKey("task_runs.id"), nullable=False),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("acquired_at", Time, nullable=False),
    sa.UniqueConstraint("task_run_id"),
    sa.Index(None, "pool"),
)

# One row per pool, locked (SELECT ... FOR UPDATE on PostgreSQL) while a lease is
# counted and taken, so concurrent coordinators never over-commit a pool.
pools = sa.Table(
    "pools",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("slots", sa.Integer, nullable=False),
)

# API tokens: only a SHA-256 of each token is stored.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(100), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("revoked_at", Time),
    sa.Column("last_used_at", Time),
)

# The audit log: one row per state-changing request the server answered (refusals
# included) and per token created or revoked. Unique `request_id`: a retried write
# stores the row once. Never the token itself, only its name.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(40), nullable=False, unique=True),
    sa.Column("at", Time, nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("actor", sa.String(200)),
    sa.Column("token", sa.String(100)),
    sa.Column("scope", sa.String(100)),
    sa.Column("method", sa.String(10)),
    sa.Column("action", sa.String(500), nullable=False),
    sa.Column("target", sa.String(500)),
    sa.Column("status", sa.Integer),
    sa.Column("outcome", sa.String(10), nullable=False),
    sa.Column("client", sa.String(100)),
    sa.Index(None, "token", "id"),
)

# The alert outbox: one row per (rule, subject, event), unique by `key`, so racing
# passes or servers enqueue an alert once; its sends and their outcome are kept.
alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False, unique=True),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id")),
    sa.Column("pipeline", sa.String(200)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("next_at", Time),
    sa.Column("last_error", sa.Text),
    sa.Column("finished_at", Time),
    sa.Index(None, "status", "next_at"),
    sa.Index(None, "rule", "created_at"),
    sa.Index(None, "run_id"),
)

# How far the alert pass has read each source (`events`, `alias_events`) by id.
alert_cursors = sa.Table(
    "alert_cursors",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("position", Id, nullable=False),
)

# Routes: a name with weighted targets (model versions) and an optional mirror.
# `version` increments on every change; the row is locked while it changes.
routes = sa.Table(
    "routes",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),
    sa.Column("mirror", sa.JSON),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

# Append-only audit log of route changes, with the state each one replaced.
route_changes = sa.Table(
    "route_changes",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("route", sa.String(200), sa.ForeignKey("routes.name"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id")),
    sa.Column("previous", sa.JSON),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.UniqueConstraint("route", "version"),
    sa.Index(None, "run_id"),
)

# One row per request and cohort the gateway answered (or failed).
gateway_samples = sa.Table(
    "gateway_samples",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("cohort", sa.String(10), nullable=False),
    sa.Column("route_version", sa.Integer, nullable=False),
    sa.Column("latency_s", sa.Double, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("scores", sa.JSON, nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Index(None, "route", "at"),
)

# Live quality signals for requests, merged into their samples' scores on read.
route_feedback = sa.Table(
    "route_feedback",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Index(None, "route", "request_id"),
)
