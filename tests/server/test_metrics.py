"""`GET /metrics` parsed with prometheus-client's own parser, checked against real runs."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families


def scrape(api) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} from one scrape."""
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("lockgate_"), family.name
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_counts_histograms_retries_and_gates_match_the_runs(api):
    for size in (1, 2):
        assert api.run("nightly", size=size).ok
    assert not api.run("fragile").ok  # one retry, then failed
    assert api.run("trainer").ok
    api.post("/api/v1/pipelines/raw/runs", {})  # queued, never driven here
    metrics = scrape(api)

    runs = metrics["lockgate_runs"]
    assert runs[(("pipeline", "nightly"), ("status", "succeeded"))] == 2
    assert runs[(("pipeline", "fragile"), ("status", "failed"))] == 1
    assert runs[(("pipeline", "raw"), ("status", "queued"))] == 1
    tasks = metrics["lockgate_task_runs"]
    assert tasks[(("pipeline", "nightly"), ("state", "succeeded"))] == 4
    assert tasks[(("pipeline", "fragile"), ("state", "failed"))] == 1
    assert tasks[(("pipeline", "raw"), ("state", "pending"))] == 1

    nightly = (("pipeline", "nightly"), ("status", "succeeded"))
    assert metrics["lockgate_run_duration_seconds_count"][nightly] == 2
    buckets = {
        dict(labels)["le"]: value
        for labels, value in metrics["lockgate_run_duration_seconds_bucket"].items()
        if dict(labels)["pipeline"] == "nightly"
    }
    assert buckets["+Inf"] == 2 and buckets["86400.0"] == 2
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    expected = sum(
        r.finished_at - r.created_at
        for r in api.workspace.metadata.list_runs(pipeline="nightly")
        if r.finished_at is not None
    )
    assert abs(metrics["lockgate_run_duration_seconds_sum"][nightly] - expected) < 1e-6
    assert metrics["lockgate_run_queue_seconds_count"][(("pipeline", "fragile"),)] == 1
    # nightly: prepare + summarize per run, one attempt each.
    assert metrics["lockgate_task_queue_seconds_count"][(("pipeline", "nightly"),)] == 4

    step = (("pipeline", "fragile"), ("task", "fragile_step"))
    assert metrics["lockgate_task_retries"][step] == 1
    assert metrics["lockgate_task_runs_executed"][step] == 1
    gates = metrics["lockgate_gate_evaluations"]
    passed = {dict(k)["result"]: v for k, v in gates.items() if dict(k)["pipeline"] == "trainer"}
    assert passed == {"passed": 1, "failed": 0}
    assert metrics["lockgate_metrics_window_seconds"][()] == 3600


def test_server_health_and_scheduler_lag(api):
    state = api.state
    state.poll_interval = 1.0
    state.last_pass = time.time() - 11.0
    state.passes = 7
    metrics = scrape(api)
    assert metrics["lockgate_up"][()] == 1 and metrics["lockgate_database_up"][()] == 1
    assert metrics["lockgate_scheduler_passes_total"][()] == 7
    assert metrics["lockgate_scheduler_lag_seconds"][()] >= 10.0
    assert metrics["lockgate_scheduler_last_pass_age_seconds"][()] >= 11.0
    assert metrics["lockgate_server_draining"][()] == 0
    assert metrics["lockgate_server_driving_runs"][()] == 0
    assert metrics["lockgate_server_uptime_seconds"][()] >= 0
    state.last_pass = time.time()
    state.stopping.set()
    metrics = scrape(api)
    assert metrics["lockgate_scheduler_lag_seconds"][()] == 0
    assert metrics["lockgate_server_draining"][()] == 1


def test_a_scrape_answers_while_the_database_is_unreadable(make_api):
    api = make_api(server="open_reads = true\n")
    api.workspace.metadata.close()
    (api.root / ".lockgate" / "lockgate.db").unlink()
    (api.root / ".lockgate" / "lockgate.db").mkdir()  # a directory: SQLite cannot open it
    response = api.client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["lockgate_up"].samples[0].value == 1
    assert families["lockgate_database_up"].samples[0].value == 0
    assert "lockgate_runs" not in families
    # A token cannot be checked either: 503, in the error shape.
    refused = api.client.get("/api/v1/runs", headers={"Authorization": "Bearer lg_x"})
    assert refused.status_code == 503 and refused.json()["error"] == "database_unavailable"
