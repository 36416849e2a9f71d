"""The chaos checker: does one finished run satisfy the reliability invariants?

It reads the metadata database with plain SQL (SQLite or PostgreSQL), the
local artifact directory, and recomputes the run's event hash chain with
lockgate's own `record.verify`. A `Verdict` lists every problem found, how
many duplicated rows or blobs it saw, and whether the record verified.

Invariants (../shared/RELIABILITY.md §3.2): every node of the run committed
exactly once (one succeeded task run, one succeeded attempt, one
`task_succeeded` event, one `produced` lineage edge, an output that exists);
attempt numbers 1..n without gaps; nothing left running or queued; no
duplicated lineage edge or blob; every blob's sha256 equals its name; one
terminal run event per drive (a resume starts a new one); the hash chain
intact; SQLite integrity_check ok.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from lockgate.service import record
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings

TERMINAL_RUN_EVENTS = ("run_succeeded", "run_failed", "run_gate_failed", "run_cancelled")


@dataclass
class Verdict:
    """What the checker found for one run."""

    problems: list[str] = field(default_factory=list)
    duplicates: int = 0
    verified: int = 0

    def add(self, other: Verdict) -> None:
        """Merge another verdict into this one."""
        self.problems += other.problems
        self.duplicates += other.duplicates
        self.verified += other.verified


def _rows(conn: sa.Connection, sql: str, **params: object) -> list[sa.Row]:
    return list(conn.execute(sa.text(sql), params))


def check_run(settings: Settings, run_id: str, *, status: str = "succeeded") -> Verdict:
    """Check run `run_id` of the installation `settings` describes; it should have `status`."""
    verdict = Verdict()
    problem = verdict.problems.append
    engine = sa.create_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            found = _rows(conn, "SELECT status FROM runs WHERE id = :r", r=run_id)
            if not found:
                return Verdict([f"run {run_id} is not recorded"])
            if found[0][0] != status:
                problem(f"run {run_id} is {found[0][0]}, expected {status}")
            task_runs = _rows(
                conn,
                "SELECT id, node_id, map_index, state, output_sha256 FROM task_runs "
                "WHERE run_id = :r",
                r=run_id,
            )
            if not task_runs:
                problem(f"run {run_id} has no task runs")
            mapped = {node for _, node, index, _, _ in task_runs if index >= 0}
            for tr_id, node, index, state, output in task_runs:
                label = f"{node}[{index}]" if index >= 0 else node
                if index < 0 and node in mapped:
                    # A map's parent row only groups its items: no attempt, no output.
                    if state in ("queued", "running", "pending", "retrying"):
                        problem(f"{label}: map left {state} after the run ended")
                    continue
                _check_task_run(conn, verdict, run_id, tr_id, label, state, output, status)
            kinds = [
                k
                for (k,) in _rows(
                    conn, "SELECT kind FROM events WHERE run_id = :r ORDER BY id", r=run_id
                )
            ]
            _check_terminal_events(verdict, run_id, kinds)
            edges = _rows(
                conn,
                "SELECT task_run_id, sha256, direction, count(*) FROM lineage_edges "
                "WHERE run_id = :r GROUP BY task_run_id, sha256, direction HAVING count(*) > 1",
                r=run_id,
            )
            for edge in edges:
                problem(f"lineage edge {tuple(edge[:3])} is recorded {edge[3]} times")
                verdict.duplicates += edge[3] - 1
            if settings.db_url.startswith("sqlite"):
                integrity = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
                if integrity != "ok":
                    problem(f"SQLite integrity_check: {integrity}")
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    problem(f"SQLite foreign_key_check: {broken[:5]}")
    finally:
        engine.dispose()
    verdict.add(check_blobs(settings))
    workspace = Workspace(settings)
    try:
        chain = record.verify(workspace, run_id)
    finally:
        workspace.close()
    if chain["ok"]:
        verdict.verified += 1
    else:
        problem(f"record of {run_id} does not verify: {chain['problems'][:3]}")
    return verdict


def _check_terminal_events(verdict: Verdict, run_id: str, kinds: list[str]) -> None:
    """One terminal event per drive of the run: a resume starts a new drive.

    A failed or cancelled run that is resumed ended once already, so its
    events hold one terminal event per drive; an orphaned drive (its
    coordinator killed) ends with none. The last drive must end exactly once.
    """
    drives: list[int] = [0]
    for kind in kinds:
        if kind == "run_resumed":
            drives.append(0)
        elif kind in TERMINAL_RUN_EVENTS:
            drives[-1] += 1
    if drives[-1] != 1:
        verdict.problems.append(
            f"run {run_id} has {drives[-1]} terminal run events since its last start, expected 1"
        )
    for n in drives[:-1]:
        if n > 1:
            verdict.problems.append(f"run {run_id}: one drive has {n} terminal run events")
    verdict.duplicates += sum(max(0, n - 1) for n in drives)


def _check_task_run(
    conn: sa.Connection,
    verdict: Verdict,
    run_id: str,
    tr_id: int,
    label: str,
    state: str,
    output: str | None,
    status: str,
) -> None:
    problem = verdict.problems.append
    attempts = _rows(
        conn,
        "SELECT number, state FROM attempts WHERE task_run_id = :t ORDER BY number",
        t=tr_id,
    )
    numbers = [n for n, _ in attempts]
    if numbers != list(range(1, len(numbers) + 1)):
        problem(f"{label}: attempt numbers {numbers} have gaps or repeats")
    unfinished = [n for n, s in attempts if s in ("queued", "running")]
    if unfinished:
        problem(f"{label}: attempts {unfinished} are still queued or running")
    if state in ("queued", "running", "pending", "retrying"):
        problem(f"{label}: left {state} after the run ended")
    if status != "succeeded" or state == "skipped":
        return
    if state not in ("succeeded", "cached"):
        problem(f"{label}: {state} in a succeeded run")
        return
    if output is None:
        problem(f"{label}: succeeded without an output")
    elif not _rows(conn, "SELECT 1 FROM artifacts WHERE sha256 = :s", s=output):
        problem(f"{label}: output {output[:12]} has no artifact row")
    if state == "cached":
        return
    succeeded = sum(1 for _, s in attempts if s == "succeeded")
    done_events = _rows(
        conn,
        "SELECT count(*) FROM events WHERE task_run_id = :t AND kind = 'task_succeeded'",
        t=tr_id,
    )[0][0]
    produced = _rows(
        conn,
        "SELECT count(*) FROM lineage_edges WHERE task_run_id = :t AND direction = 'produced'",
        t=tr_id,
    )[0][0]
    for what, n in (("succeeded attempts", succeeded), ("task_succeeded events", done_events)):
        if n != 1:
            problem(f"{label}: {n} {what}, expected exactly 1")
            verdict.duplicates += max(0, n - 1)
    passed_on = _rows(
        conn,
        "SELECT count(*) FROM lineage_edges WHERE task_run_id = :t AND direction = 'consumed' "
        "AND sha256 = :s",
        t=tr_id,
        s=output,
    )[0][0]
    # A node that hands an input on unchanged did not produce it (lineage keeps the maker).
    expected = 0 if passed_on else 1
    if produced != expected:
        problem(f"{label}: {produced} produced lineage edges, expected {expected}")
        verdict.duplicates += max(0, produced - 1)
    started = _rows(
        conn,
        "SELECT attempt, count(*) FROM events WHERE task_run_id = :t AND kind = 'task_started' "
        "GROUP BY attempt HAVING count(*) > 1",
        t=tr_id,
    )
    for attempt, n in started:
        problem(f"{label}: attempt {attempt} has {n} task_started events")
        verdict.duplicates += n - 1


def check_blobs(settings: Settings) -> Verdict:
    """Every blob in a local artifact store is whole: its sha256 is its name, once."""
    verdict = Verdict()
    root = settings.artifact_root
    if "://" in root and not root.startswith("file://"):
        return verdict
    path = Path(root.removeprefix("file://"))
    if not path.exists():
        return verdict
    seen: Counter[str] = Counter()
    for blob in path.rglob("*"):
        if not blob.is_file() or blob.name.startswith(".tmp-"):
            continue
        seen[blob.name] += 1
        if hashlib.sha256(blob.read_bytes()).hexdigest() != blob.name:
            verdict.problems.append(f"blob {blob} does not hash to its name (torn or corrupt)")
    for name, n in seen.items():
        if n > 1:
            verdict.problems.append(f"blob {name[:12]} is stored {n} times")
            verdict.duplicates += n - 1
    return verdict
