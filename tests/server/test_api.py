"""The REST API over real runs in SQLite: every endpoint's answers and errors."""

from __future__ import annotations

from typing import Any

from lockgate.model.states import EventKind


def body(response: Any) -> Any:
    return response.json()


def test_pipelines_list_describe_and_graph(api):
    listed = body(api.get("/api/v1/pipelines"))
    assert [p["name"] for p in listed] == ["fragile", "nightly", "raw", "trainer", "waiter"]
    nightly = body(api.get("/api/v1/pipelines/nightly"))
    assert nightly["params"] == ["size"] and nightly["description"].startswith("Prepare")
    graph = body(api.get("/api/v1/pipelines/nightly/graph"))
    assert [(n["id"], n["upstream"]) for n in graph["nodes"]] == [
        ("prepare", []),
        ("summarize", ["prepare"]),
    ]
    missing = api.get("/api/v1/pipelines/nope/graph")
    assert missing.status_code == 404 and body(missing)["error"] == "pipeline_not_found"


def test_trigger_queues_a_run_once_per_key(api):
    first = api.post("/api/v1/pipelines/nightly/runs", {"params": {"size": 5}, "key": "k1"})
    assert first.status_code == 201
    run_id = body(first)["run_id"]
    assert body(first)["status"] == "queued" and body(first)["url"] == f"/api/v1/runs/{run_id}"
    again = api.post("/api/v1/pipelines/nightly/runs", {"params": {"size": 5}, "key": "k1"})
    assert again.status_code == 200 and body(again)["run_id"] == run_id
    run = body(api.get(f"/api/v1/runs/{run_id}"))["run"]
    assert (run["trigger"], run["params"]) == ("api", {"size": 5})

    bad = api.post("/api/v1/pipelines/nightly/runs", {"params": {"size": "many"}})
    assert bad.status_code == 422 and body(bad)["error"] == "invalid_params"
    unknown = api.post("/api/v1/pipelines/nightly/runs", {"params": {}, "extra": 1})
    assert unknown.status_code == 422 and body(unknown)["error"] == "invalid_request"
    assert body(unknown)["detail"][0]["where"] == "body.extra"


def test_runs_list_filters_and_pages(api):
    ids = [api.run("nightly", size=i).run_id for i in (1, 2, 3)]
    failed = api.run("fragile").run_id
    api.post("/api/v1/pipelines/raw/runs", {})
    page = body(api.get("/api/v1/runs", params={"limit": 2}))
    assert len(page["runs"]) == 2 and page["next_offset"] == 2
    rest = body(api.get("/api/v1/runs", params={"limit": 2, "offset": 4}))
    assert len(rest["runs"]) == 1 and rest["next_offset"] is None
    nightly = body(api.get("/api/v1/runs", params={"pipeline": "nightly"}))["runs"]
    assert [r["run_id"] for r in nightly] == ids[::-1]
    only_failed = body(api.get("/api/v1/runs", params={"status": "failed"}))["runs"]
    assert [r["run_id"] for r in only_failed] == [failed]
    by_api = body(api.get("/api/v1/runs", params={"trigger": "api"}))["runs"]
    assert [r["pipeline"] for r in by_api] == ["raw"]
    capped = api.get("/api/v1/runs", params={"limit": 201})
    assert capped.status_code == 422 and body(capped)["detail"][0]["where"] == "query.limit"
    wrong = api.get("/api/v1/runs", params={"status": "sleeping"})
    assert wrong.status_code == 422


def test_run_tasks_attempts_and_logs(api):
    run_id = api.run("fragile").run_id
    detail = body(api.get(f"/api/v1/runs/{run_id}"))
    assert detail["run"]["status"] == "failed"
    tasks = body(api.get(f"/api/v1/runs/{run_id}/tasks"))
    step = next(t for t in tasks if t["id"] == "fragile_step")
    assert step["state"] == "failed" and step["attempt_count"] == 2
    attempts = body(api.get(f"/api/v1/runs/{run_id}/tasks/fragile_step/attempts"))
    assert [a["number"] for a in attempts] == [1, 2]
    assert "the file 'fixed' is missing" in attempts[0]["error"]
    missing = api.get(f"/api/v1/runs/{run_id}/tasks/nope/attempts")
    assert missing.status_code == 404 and body(missing)["error"] == "node_not_found"

    everything = api.get(f"/api/v1/runs/{run_id}/logs")
    assert everything.headers["content-type"].startswith("text/plain")
    assert "=== prepare attempt 1 ===\npreparing 2 rows" in everything.text
    assert everything.text.count("looking for the file 'fixed'") == 2
    one = api.get(f"/api/v1/runs/{run_id}/logs", params={"node": "fragile_step", "attempt": 2})
    assert one.text == "looking for the file 'fixed'\n"
    none = api.get(f"/api/v1/runs/{run_id}/logs", params={"node": "ghost"})
    assert none.status_code == 404
    gone = api.get("/api/v1/runs/r-missing")
    assert gone.status_code == 404 and set(body(gone)) == {"error", "detail"}
    assert body(gone)["error"] == "run_not_found" and "no run 'r-missing'" in body(gone)["detail"]


def test_finished_follow_stream_replays_the_output_then_ends(api):
    run_id = api.run("nightly", size=4).run_id
    response = api.get(f"/api/v1/runs/{run_id}/logs/stream")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: log" in response.text and '"text": "preparing 4 rows\\n"' in response.text
    assert response.text.rstrip().endswith('event: end\ndata: {"status": "succeeded"}')
    # Every event matches the event schema the OpenAPI document gives for the stream.
    import jsonschema

    document = api.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/runs/{run_id}/logs/stream"]["get"]
    schema = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    events = [
        dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        for block in response.text.strip().split("\n\n")
    ]
    assert [e["event"] for e in events][-1] == "end" and len(events) > 1
    for event in events:
        jsonschema.validate(event, schema)


def test_following_a_node_an_ended_run_never_had_is_a_404_not_a_stream(api):
    # Found by the REST fuzzing: the stream used to send an undocumented `error` event.
    run_id = api.run("nightly", size=4).run_id
    response = api.get(f"/api/v1/runs/{run_id}/logs/stream?node=no_such_node")
    assert response.status_code == 404, response.text
    assert body(response)["error"] == "node_not_found"
    assert "no_such_node" in body(response)["detail"]


def test_cancel_and_resume_through_the_queue(api):
    queued = body(api.post("/api/v1/pipelines/nightly/runs", {}))["run_id"]
    cancelled = api.post(f"/api/v1/runs/{queued}/cancel")
    assert cancelled.status_code == 200 and body(cancelled)["status"] == "cancelled"
    again = api.post(f"/api/v1/runs/{queued}/cancel")
    assert again.status_code == 409 and body(again)["error"] == "run_state"

    failed = api.run("fragile").run_id
    resumed = api.post(f"/api/v1/runs/{failed}/resume")
    assert resumed.status_code == 200
    assert body(resumed)["status"] == "queued" and body(resumed)["claimed_by"] is None
    assert api.state.wake.is_set()
    events = api.workspace.metadata.events(failed)
    assert [e.payload for e in events if e.kind is EventKind.RUN_RESUMED] == [
        {"by": "api:t-run", "previous_status": "failed"}  # the token that resumed it
    ]
    tasks = {r.node_id: r.state.value for r in api.workspace.metadata.task_runs(failed)}
    assert tasks == {"prepare": "succeeded", "fragile_step": "pending"}
    succeeded = api.run("nightly").run_id
    refused = api.post(f"/api/v1/runs/{succeeded}/resume")
    assert refused.status_code == 409 and "already succeeded" in body(refused)["detail"]


def test_artifacts_metadata_download_and_lineage(api):
    result = api.run("raw")
    output = api.workspace.metadata.task_runs(result.run_id)[0].output
    assert output is not None
    meta = body(api.get(f"/api/v1/artifacts/sha256:{output.sha256}"))
    assert meta["serializer"] == "bytes" and meta["produced_by"][0]["run_id"] == result.run_id
    listed = body(api.get("/api/v1/artifacts"))
    assert output.sha256 in [a["sha256"] for a in listed]
    download = api.get(f"/api/v1/artifacts/{output.sha256}/content")
    assert download.status_code == 200 and download.content == b"\x00raw bytes\xff"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == (
        f'attachment; filename="{output.sha256[:16]}.bin"'
    )
    assert download.headers["x-content-type-options"] == "nosniff"
    for key in ("../../etc/passwd", "sha256:zz", "x" * 64):
        refused = api.get(f"/api/v1/artifacts/{key}/content")
        assert refused.status_code in (400, 404), key
        assert body(refused)["error"] in ("invalid_artifact_key", "not_found")
    unknown = api.get(f"/api/v1/artifacts/{'0' * 64}")
    assert unknown.status_code == 404 and body(unknown)["error"] == "artifact_not_found"


def test_models_lineage_record_promote_and_rollback(api):
    first = api.run("trainer")
    second = api.run("trainer", scale=2.0)
    assert first.ok and second.ok
    models = body(api.get("/api/v1/models", params={"name": "tiny-clf"}))
    assert [m["version"] for m in models] == [2, 1] and all(m["gated"] for m in models)
    one = body(api.get("/api/v1/models/tiny-clf/versions/1"))
    assert one["run_id"] == first.run_id
    model_file = api.get("/api/v1/artifacts/model:tiny-clf@1/content")
    assert model_file.status_code == 200
    assert 'filename="model-tiny-clf-1.' in model_file.headers["content-disposition"]
    lineage = body(api.get("/api/v1/lineage/model:tiny-clf@1"))
    assert lineage["direction"] == "upstream"
    assert lineage["dataset_versions"] == ["dataset:numbers@1"]
    down = body(api.get("/api/v1/lineage/dataset:numbers@1", params={"direction": "downstream"}))
    assert down["direction"] == "downstream" and len(down["task_runs"]) >= 2
    assert api.get("/api/v1/lineage/model:tiny-clf@9").status_code == 404

    record = body(api.get(f"/api/v1/runs/{first.run_id}/record"))
    assert record["schema"] == "lockgate.record/1" and record["verification"]["ok"]
    assert record["gates"][0]["passed"] is True
    verified = body(api.get(f"/api/v1/runs/{first.run_id}/record/verify"))
    assert verified["ok"] and verified["events"] > 0

    promoted = api.post(
        "/api/v1/models/tiny-clf/promote", {"version": 1, "alias": "production"}, scope="admin"
    )
    assert body(promoted) == {
        "name": "tiny-clf",
        "alias": "production",
        "previous_version": None,
        "version": 1,
    }
    api.post("/api/v1/models/tiny-clf/promote", {"version": 2, "alias": "production"}, "admin")
    rolled = body(api.post("/api/v1/models/tiny-clf/rollback", {"alias": "production"}, "admin"))
    assert (rolled["previous_version"], rolled["version"]) == (2, 1)
    audit = body(api.get("/api/v1/models/tiny-clf/audit"))
    assert [(e["action"], e["version"], e["actor"]) for e in audit] == [
        ("promote", 1, "api:t-admin"),
        ("promote", 2, "api:t-admin"),
        ("rollback", 1, "api:t-admin"),
    ]
    missing = api.post("/api/v1/models/tiny-clf/promote", {"version": 7, "alias": "x"}, "admin")
    assert missing.status_code == 409 and body(missing)["error"] == "registry"
    bad_name = api.get("/api/v1/models/Bad Name/audit")
    assert bad_name.status_code == 400


def test_stats_answer_the_six_metrics(api):
    api.run("nightly")
    api.run("fragile")
    stats = body(api.get("/api/v1/stats", params={"since": "1d"}))
    assert stats["window"] == "1d" and stats["totals"]["finished_runs"] == 2
    assert stats["totals"]["succeeded"] == 1
    only = body(api.get("/api/v1/stats", params={"pipeline": "nightly"}))
    assert [p["pipeline"] for p in only["pipelines"]] == ["nightly"]
    bad = api.get("/api/v1/stats", params={"since": "soon"})
    assert bad.status_code == 400 and body(bad)["error"] == "bad_request"


def test_unknown_routes_and_methods_answer_in_the_error_shape(api):
    missing = api.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and body(missing)["error"] == "not_found"
    wrong = api.client.put("/api/v1/runs", headers=api.headers("admin"), json={})
    assert wrong.status_code == 405 and body(wrong)["error"] == "method_not_allowed"
