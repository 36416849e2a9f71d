"""The routes API: list and show with a read token; shift and roll back with an admin token."""

from __future__ import annotations

from lockgate.ports.routes import RouteTarget
from lockgate.service import routes


def body(response):
    return response.json()


def test_routes_are_read_shifted_and_rolled_back_over_the_api(api):
    for scale in (1.0, 2.0, 3.0):
        assert api.run("trainer", scale=scale).ok
    assert body(api.get("/api/v1/routes")) == []
    routes.set_route(
        api.workspace, "clf", [RouteTarget("tiny-clf", 1, 100)], by="cli:ann", reason="launch"
    )

    shifted = api.post(
        "/api/v1/routes/clf/shift",
        {"weights": {"model:tiny-clf@2": 5}, "reason": "canary by hand"},
        scope="admin",
    )
    assert shifted.status_code == 200, shifted.text
    assert body(shifted)["targets"] == [
        {"target": "model:tiny-clf@1", "weight": 95.0},
        {"target": "model:tiny-clf@2", "weight": 5.0},
    ]
    assert body(shifted)["updated_by"] == "api:t-admin"

    (listed,) = body(api.get("/api/v1/routes"))
    assert (listed["name"], listed["version"], listed["mirror"]) == ("clf", 2, None)

    rolled = api.post("/api/v1/routes/clf/rollback", {"reason": "too slow"}, scope="admin")
    assert rolled.status_code == 200 and body(rolled)["version"] == 3
    detail = body(api.get("/api/v1/routes/clf"))
    assert detail["route"]["targets"] == [{"target": "model:tiny-clf@1", "weight": 100.0}]
    assert [(c["action"], c["by"], c["reason"]) for c in detail["changes"]] == [
        ("rollback", "api:t-admin", "too slow"),
        ("shift", "api:t-admin", "canary by hand"),
        ("set", "cli:ann", "launch"),
    ]
    assert detail["changes"][0]["previous"]["targets"][1] == {
        "target": "model:tiny-clf@2",
        "weight": 5.0,
    }
    assert len(body(api.get("/api/v1/routes/clf?limit=1"))["changes"]) == 1


def test_route_changes_need_an_admin_token_and_errors_say_why(api):
    assert api.run("trainer").ok
    routes.set_route(api.workspace, "clf", [RouteTarget("tiny-clf", 1, 100)], by="cli:ann")
    shift = {"weights": {"model:tiny-clf@1": 100}}
    for scope in ("read", "run"):
        denied = api.post("/api/v1/routes/clf/shift", shift, scope=scope)
        assert denied.status_code == 403 and "admin" in body(denied)["detail"]
        assert api.post("/api/v1/routes/clf/rollback", {}, scope=scope).status_code == 403
    assert api.client.get("/api/v1/routes").status_code == 401

    missing = api.post("/api/v1/routes/nope/shift", shift, scope="admin")
    assert missing.status_code == 404 and body(missing)["error"] == "route_not_found"
    assert "lockgate routes set nope" in body(missing)["detail"]

    unregistered = api.post(
        "/api/v1/routes/clf/shift", {"weights": {"model:tiny-clf@9": 5}}, scope="admin"
    )
    assert unregistered.status_code == 422 and body(unregistered)["error"] == "invalid_route"
    assert "not a registered model version" in body(unregistered)["detail"]

    stale = api.post("/api/v1/routes/clf/shift", {**shift, "expected_version": 7}, scope="admin")
    assert stale.status_code == 409 and body(stale)["error"] == "route_conflict"

    nothing = api.post("/api/v1/routes/clf/rollback", {}, scope="admin")
    assert nothing.status_code == 409 and body(nothing)["error"] == "route_state"
    assert "no earlier state" in body(nothing)["detail"]

    invalid = api.post("/api/v1/routes/clf/shift", {"weights": {}}, scope="admin")
    assert invalid.status_code == 422
    assert api.get("/api/v1/routes/Bad%20Name").status_code == 400
    assert body(api.get("/api/v1/routes/clf"))["route"]["version"] == 1
