"""The UI at scale: 10,000 runs in the list and a 2,000-node run, rendered (not timed).

The runs are bulk-inserted rows (a copy of one real run's pipeline ids), not
10,000 executions; the wide run is created by `enqueue` and cancelled before
the server starts, so it is drawn but never launched.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from uiserver import log_in

from lockgate.model.states import TaskState, Trigger
from lockgate.service.catalog import load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.enqueue import enqueue
from lockgate.service.lifecycle import cancel_run
from lockgate.service.project import parse
from lockgate.stores.metadata import schema

WIDE = """

@lg.task
def part(i: int) -> int:
    return i


@lg.task
def total(values: list) -> int:
    return sum(values)


@lg.pipeline
def wide():
    \"\"\"1,999 parts joined by one total: 2,000 nodes.\"\"\"
    return total([part(i) for i in range(1999)])
"""

RUNS = 10_000
STATUSES = ("succeeded", "failed", "cancelled", "succeeded", "succeeded")
TRIGGERS = ("schedule", "api", "cli", "ui")


def fill(config: Path) -> None:
    """One real 2,000-node run (cancelled) and 10,000 more run rows."""
    workspace = Workspace(project=parse(config))
    try:
        entry = load_catalog(workspace.project).get("wide")
        run_id = enqueue(
            workspace, entry.pipeline, {}, trigger=Trigger.CLI, pipeline_ref=entry.ref
        ).run_id
        store = workspace.metadata
        ids = [r.id for r in store.task_runs(run_id)]
        now = time.time()
        store.set_task_state(run_id, ids[:500], TaskState.SUCCEEDED, now)
        store.set_task_state(run_id, ids[500:510], TaskState.FAILED, now, reason="broke")
        cancel_run(workspace, run_id)
        engine = sa.create_engine(workspace.settings.db_url)
        with engine.begin() as conn:
            row = conn.execute(sa.select(schema.runs).where(schema.runs.c.id == run_id)).one()
            base = dict(row._mapping)
            rows = []
            for i in range(RUNS):
                created = now - 86400 + i * 5
                rows.append(
                    {
                        **base,
                        "id": f"r-scale-{i:05d}",
                        "status": STATUSES[i % len(STATUSES)],
                        "trigger": TRIGGERS[i % len(TRIGGERS)],
                        "trigger_key": None,
                        "created_at": created,
                        "started_at": created + 1,
                        "finished_at": created + 3,
                    }
                )
            conn.execute(schema.runs.insert(), rows)
        engine.dispose()
    finally:
        workspace.close()


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="run" data-run="([^"]+)"', html)


def test_ten_thousand_runs_and_a_two_thousand_node_run_render(start_project):
    project = start_project(more_pipelines=WIDE, prepare=fill)
    http = httpx.Client(base_url=project.url, timeout=60)
    csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text).group(1)
    http.post(
        "/login", data={"csrf": csrf, "token": project.token}, headers={"Origin": project.url}
    )

    first = http.get("/").text
    wide_id, *rest = run_ids(first)  # the wide run is the newest
    assert not wide_id.startswith("r-scale-") and rest[:2] == ["r-scale-09999", "r-scale-09998"]
    assert len(run_ids(first)) == 50 and 'id="older"' in first
    last = http.get("/?page=201").text  # 10,001 runs: the last page holds the oldest one
    assert run_ids(last) == ["r-scale-00000"] and 'id="older"' not in last
    filtered = http.get("/?status=failed&trigger=schedule&page=3").text
    rows = re.findall(r'<tr class="run" data-run="r-scale-(\d+)" data-state="(\w+)"', filtered)
    assert len(rows) == 50
    for number, state in rows:
        assert state == "failed" and TRIGGERS[int(number) % 4] == "schedule"
    live = http.get("/ui/runs/rows?pipeline=wide&status=succeeded").text
    assert len(run_ids(live)) == 50

    page = http.get(f"/runs/{wide_id}")
    assert page.status_code == 200
    assert page.text.count('<g class="node"') == 2000
    assert page.text.count('data-state="succeeded"') >= 500
    assert page.text.count('data-state="failed"') >= 10
    assert "more task runs are not drawn" not in page.text  # no attempts: nothing in the Gantt
    states = http.get(f"/ui/runs/{wide_id}/states").json()
    assert len(states["nodes"]) == 2000 and states["status"] == "cancelled"
    assert sum(s == "succeeded" for s in states["nodes"].values()) == 500


def test_the_two_thousand_node_run_loads_in_chromium(start_project, browser_page):
    project = start_project(more_pipelines=WIDE, prepare=fill)
    page, console = browser_page
    log_in(page, project, "/?trigger=cli")
    page.locator("tr.run a").first.click()
    page.wait_for_url(f"{project.url}/runs/r-*")
    assert page.locator("svg.dag g.node").count() == 2000
    assert page.locator('svg.dag g.node[data-state="succeeded"]').count() == 500
    assert page.locator("#run-status").get_attribute("data-state") == "cancelled"
    assert console.csp_violations() == [] and not any("pageerror" in m for m in console.messages)
