"""The web UI in Chromium against a real `lockgate server`: runs, live DAG, logs, resume, lineage.

Assertions are on the DOM (data-state attributes the page's script updates
in place), never on timings. Each test also checks the console shows no
Content-Security-Policy violation.
"""

from __future__ import annotations

import re

import pytest
from uiserver import log_in

pytestmark = pytest.mark.slow


def no_csp_violations(console) -> None:
    assert console.csp_violations() == [], console.messages


def node(page, node_id: str):
    return page.locator(f'svg.dag g.node[data-node="{node_id}"]')


def test_runs_page_lists_runs_and_needs_a_login(project, browser_page, shoot):
    page, console = browser_page
    page.goto(project.url + "/")
    assert page.url.startswith(project.url + "/login?next=")  # reads are closed by default
    shoot(page, "login")
    log_in(page, project)
    assert page.locator("h1").inner_text() == "Runs"
    assert page.locator("tr.empty").count() == 1
    queued = project.api("POST", "/api/v1/pipelines/fragile/runs", {"params": {}})
    project.wait_run(queued["run_id"], ("failed",))
    # The first page refreshes itself: the run appears without a reload.
    row = page.locator(f'tr.run[data-run="{queued["run_id"]}"]')
    row.wait_for()
    page.wait_for_function(
        "id => document.querySelector(`tr.run[data-run='${id}']`).dataset.state === 'failed'",
        arg=queued["run_id"],
    )
    page.select_option("select[name=status]", "succeeded")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*status=succeeded.*"))
    assert page.locator("tr.run").count() == 0
    page.select_option("select[name=status]", "failed")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*status=failed.*"))
    assert page.locator("tr.run").count() == 1
    other = project.api("POST", "/api/v1/pipelines/trainer/runs", {"params": {}})["run_id"]
    page.goto(project.url + "/")
    page.locator(f'tr.run[data-run="{other}"][data-state=succeeded]').wait_for()
    shoot(page, "runs")
    no_csp_violations(console)


def test_trigger_and_watch_the_dag_go_from_queued_to_running_to_succeeded(
    project, browser_page, shoot
):
    page, console = browser_page
    log_in(page, project, "/pipelines/watched")
    page.fill("input[name='param.size']", "5")
    page.click("#trigger")
    page.wait_for_url(re.compile(r".*/runs/r-[^/]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    # Loaded once; from here on the script updates data-state in place.
    page.evaluate("window.__same_document = true")
    node(page, "wait_for_go").and_(page.locator("[data-state=running]")).wait_for()
    assert node(page, "prepare").get_attribute("data-state") == "succeeded"
    assert node(page, "summarize").get_attribute("data-state") in ("pending", "queued")
    assert page.locator("#run-status").get_attribute("data-state") == "running"
    page.locator("svg.gantt rect.bar[data-kind=running]").wait_for()  # the timeline too
    shoot(page, "run-running")
    (project.root / "go").touch()
    node(page, "summarize").and_(page.locator("[data-state=succeeded]")).wait_for()
    page.locator("#run-status[data-state=succeeded]").wait_for()
    assert page.evaluate("window.__same_document") is True  # never reloaded
    page.wait_for_function("!document.getElementById('cancel-form')")  # nothing to cancel now
    assert page.locator("#duration").inner_text().endswith(" s")
    assert project.api("GET", f"/api/v1/runs/{run_id}")["run"]["trigger"] == "ui"
    assert page.locator("svg.gantt rect.bar[data-kind=succeeded]").count() == 3
    shoot(page, "run")
    no_csp_violations(console)


def test_a_failed_nodes_logs_then_resume_until_it_succeeds(project, browser_page, shoot):
    page, console = browser_page
    run_id = project.api("POST", "/api/v1/pipelines/fragile/runs", {"params": {}})["run_id"]
    project.wait_run(run_id, ("failed",))
    log_in(page, project, f"/runs/{run_id}")
    assert node(page, "fragile_step").get_attribute("data-state") == "failed"
    assert node(page, "summarize").get_attribute("data-state") in ("pending", "skipped")
    assert page.locator("svg.gantt rect.bar[data-kind=failed]").count() == 1
    node(page, "fragile_step").locator("a").click()
    page.wait_for_url(f"{project.url}/runs/{run_id}/nodes/fragile_step")
    attempt = page.locator("section.attempt[data-state=failed]")
    assert "looking for the file 'fixed'" in attempt.locator("pre.log").inner_text()
    assert "the file 'fixed' is missing" in attempt.locator("pre.error").inner_text()
    shoot(page, "node-logs")
    page.go_back()
    (project.root / "fixed").touch()
    page.click("#resume")
    page.wait_for_url(f"{project.url}/runs/{run_id}")
    node(page, "summarize").and_(page.locator("[data-state=succeeded]")).wait_for()
    page.locator("#run-status[data-state=succeeded]").wait_for()
    assert node(page, "prepare").get_attribute("data-state") == "succeeded"
    no_csp_violations(console)


def test_the_lineage_of_a_registered_model(project, browser_page, shoot):
    page, console = browser_page
    run_id = project.api("POST", "/api/v1/pipelines/trainer/runs", {"params": {}})["run_id"]
    assert project.wait_run(run_id, ("succeeded", "failed", "gate_failed")) == "succeeded"
    log_in(page, project, "/models")
    page.click("a[href='/models/tiny-clf']")
    version = page.locator("table.versions tr[data-version='1']")
    assert "production" in version.inner_text()
    assert "accuracy >= 0.9" in version.inner_text()
    assert "promote" in page.locator("table.audit").inner_text()
    shoot(page, "model")
    version.locator("a.lineage-link").click()
    page.wait_for_url(re.compile(r".*/lineage\?ref=model%3Atiny-clf%401$"))
    assert page.locator("#datasets").inner_text() == "dataset:numbers@1"
    artifacts = page.locator("svg.dag g.node[data-kind=artifact]")
    tasks = page.locator("svg.dag g.node[data-kind=task]")
    assert artifacts.count() >= 2 and tasks.count() >= 2
    labels = page.locator("svg.dag").text_content()
    assert "model:tiny-clf@1" in labels and "dataset:numbers@1" in labels
    shoot(page, "lineage")
    # Descendants of the dataset reach the model.
    page.goto(project.url + "/lineage?ref=dataset:numbers@1&direction=down")
    assert "model:tiny-clf@1" in page.locator("svg.dag").text_content()
    page.goto(f"{project.url}/runs/{run_id}/record")
    assert page.locator("p.verify").get_attribute("data-ok") == "true"
    shoot(page, "record")
    page.goto(project.url + "/pipelines/trainer")
    assert node(page, "gate").count() == 1
    success = page.locator("tr[data-metric=success_rate]")
    assert "100.0 % of 1 runs" in success.inner_text()
    assert success.locator("svg.trend polyline").count() == 1
    assert "100.0 % of 1" in page.locator("tr[data-metric=gate_pass_rate]").inner_text()
    shoot(page, "pipeline")
    no_csp_violations(console)
