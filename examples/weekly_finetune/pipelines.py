"""Weekly fine-tune: train candidates, evaluate, register the best, canary it at 5%, decide.

    last week's model -> register (the incumbent) -> open_route (first week only: serve it)
    this week's export -> train_candidate.map(C grid) -> score_candidate.map -> pick_best
        -> predict -> evaluate (per product area) -> gate -> register -> canary 5% ------+
                                                                  live_traffic ---------+
        -> promote (route 100% on the candidate, `production` moved) or roll back (page)

The model is a ticket router: TF-IDF + logistic regression that predicts the
product area (billing, shipping, account, returns) of a support question from
`lockgate.demo.corpus`, so the ticket reaches the right team. Last week's model
was trained before the Spanish help centre launched and misroutes most Spanish
tickets; this week's candidates learn from a week of tickets in both languages.

Offline evaluation and the gate cannot see everything: `regression=True` injects
a labelling bug into this week's export (returns and shipping tickets carry each
other's team). The candidate learns the bug, and the held-out day of the same
export has it too, so the candidate passes the offline gate with full marks;
only live traffic, where customers say whether their ticket reached the right
team, shows it routes returns to shipping. The canary sees that within seconds,
restores the route, leaves the registry alone and pages; the run ends
`gate_failed`. With `regression=False` the candidate resolves more tickets than
the incumbent and is promoted: the route serves it at 100% and the registry
alias `production` moves to it.

One run is the whole story, live traffic included: `live_traffic` starts
`lockgate gateway` on a free 127.0.0.1 port and plays customers (predict, then
feedback `resolved` = 1 if the ticket reached its team) until the canary has
decided. It needs the process executor (the default; with `inline` one task at a
time runs, so the canary could not watch while traffic flows), and the gateway
it starts must open the run's workspace: run from this directory (or with
LOCKGATE_CONFIG / LOCKGATE_HOME pointing at it), as the README shows:

    lockgate run pipelines.py:weekly_finetune -p regression=true   # rolled back, paged
    lockgate run pipelines.py:weekly_finetune                       # promoted
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lockgate as lg
from lockgate import evals
from lockgate.demo.corpus import transcripts

MODEL = "ticket-router"
ROUTE = "ticket-router"
#: The labelling bug `regression=True` injects: these areas carry each other's label.
SWAPPED = {"returns": "shipping", "shipping": "returns"}
#: The evaluator suite every candidate, and the gated one, is scored with.
SUITE = [evals.Accuracy(), evals.F1(average="macro", name="macro_f1")]
#: Tickets per day in the training exports.
PER_DAY = 120
#: The canary: the candidate's share, when it may promote, how long at most.
CANARY = {
    "percent": 5,
    "min_samples": 40,
    "max_wait": "90s",
    "max_regression": 0.02,
    "check_every": "0.5s",
}
#: Live traffic: client threads, and an upper bound on requests per run.
CLIENTS = 4
MAX_REQUESTS = 6000


def _days(first: str, count: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def _fit(rows: list[dict[str, Any]], c: float) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    router = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=c, max_iter=1000),
    )
    return router.fit([r["question"] for r in rows], [r["product_area"] for r in rows])


def _predictions(model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    predicted = model.predict([r["question"] for r in rows])
    return [
        {
            "label": r["product_area"],
            "prediction": str(p),
            "product_area": r["product_area"],
            "language": r["language"],
        }
        for r, p in zip(rows, predicted, strict=True)
    ]


@lg.task(cache=True)
def train_last_weeks_model(week: str) -> Any:
    """Last week's router: a week of tickets from before the Spanish help centre opened."""
    last_week = (dt.date.fromisoformat(week) - dt.timedelta(days=7)).isoformat()
    rows = [r for day in _days(last_week, 7) for r in transcripts(day, PER_DAY, spanish_share=0.0)]
    return _fit(rows, c=1.0)


@lg.task
def score_last_weeks_model(model: Any, week: str) -> dict[str, Any]:
    """The incumbent's offline scores, on its own week's held-out tickets (as it was shipped)."""
    last_day = (dt.date.fromisoformat(week) - dt.timedelta(days=1)).isoformat()
    holdout = transcripts(last_day, PER_DAY, spanish_share=0.0)
    return evals.evaluate(_predictions(model, holdout), SUITE)


@lg.task
def export_week(week: str, regression: bool) -> dict[str, list[dict[str, Any]]]:
    """This week's labelled tickets: six days to train on, the seventh held out.

    With `regression`, the export has a labelling bug (returns and shipping
    tickets carry each other's team) in both parts, as a bad join would.
    """
    days = _days(week, 7)
    rows = [r for day in days for r in transcripts(day, PER_DAY)]
    if regression:
        rows = [
            {**r, "product_area": SWAPPED.get(r["product_area"], r["product_area"])} for r in rows
        ]
    lg.current().logger.info(
        "exported %d tickets for the week of %s%s",
        len(rows),
        week,
        " (with the returns/shipping label swap)" if regression else "",
    )
    return {
        "train": [r for r in rows if r["day"] != days[-1]],
        "holdout": [r for r in rows if r["day"] == days[-1]],
    }


@lg.task
def week_of(week: str, logical_date: str) -> str:
    """The Monday the week to train on starts: `week`, or, on a scheduled run, the week
    before the tick (the server passes `logical_date`, e.g. Monday 03:00 UTC)."""
    if not logical_date:
        return dt.date.fromisoformat(week).isoformat()
    tick = dt.date.fromisoformat(logical_date[:10])
    return (tick - dt.timedelta(days=tick.weekday() + 7)).isoformat()


@lg.task
def c_grid(grid: str) -> list[float]:
    """The regularization strengths to try, from `"0.01,0.1,1,10"`."""
    values = [float(v) for v in grid.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"c_grid must list positive numbers such as '0.01,0.1,1,10', got {grid!r}")
    return values


@lg.task
def train_candidate(c: float, export: dict[str, list[dict[str, Any]]]) -> Any:
    """One candidate: the router fitted on this week's training days with strength C."""
    return _fit(export["train"], c)


@lg.task
def score_candidate(model: Any, export: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One candidate's scores on the held-out day, with the suite the gate uses."""
    return evals.evaluate(_predictions(model, export["holdout"]), SUITE)


@lg.task
def pick_best(models: list[Any], scores: list[dict[str, Any]], grid: list[float]) -> Any:
    """The candidate with the best macro F1, then accuracy; a tie goes to the smaller C."""
    ranked = sorted(
        range(len(models)),
        key=lambda i: (-scores[i]["metrics"]["macro_f1"], -scores[i]["metrics"]["accuracy"]),
    )
    best = ranked[0]
    for i in range(len(models)):
        m = scores[i]["metrics"]
        lg.current().logger.info(
            "C=%g: accuracy %.3f, macro F1 %.3f%s",
            grid[i],
            m["accuracy"],
            m["macro_f1"],
            "  <- best" if i == best else "",
        )
    return models[best]


@lg.task
def predict_holdout(model: Any, export: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The best candidate's predictions on the held-out day, with cohorts."""
    return _predictions(model, export["holdout"])


# -- the route and the live traffic --------------------------------------------------------


def _workspace() -> Any:
    """The run's workspace, opened from this process's configuration (cwd, LOCKGATE_*)."""
    workspace = lg.Workspace()
    run_id = lg.current().run_id
    try:
        workspace.metadata.get_run(run_id)
    except lg.errors.RunNotFoundError:
        workspace.close()
        raise RuntimeError(
            f"run {run_id} is not in the workspace this task opens ({workspace.settings.home}); "
            "run weekly_finetune from its project directory or set LOCKGATE_CONFIG / "
            "LOCKGATE_HOME to it, so the gateway this run starts reads the same database"
        ) from None
    return workspace


@lg.task
def open_route(incumbent: Any) -> dict[str, Any]:
    """The route the canary shifts; the first week, create it serving last week's model.

    Later weeks leave it alone: whatever serves it is the incumbent. The first
    week also points `production` at last week's model, so the registry agrees
    with what serves. (`lockgate routes set` and `lockgate models promote` do the
    same from a shell.)
    """
    from lockgate.ports.routes import RouteTarget
    from lockgate.service import registry, routes

    run_id = lg.current().run_id
    workspace = _workspace()
    try:
        try:
            route = routes.get_route(workspace, ROUTE)
            bootstrapped = False
        except lg.errors.RouteNotFoundError:
            # The version this pipeline's first lg.register (last week's model) made.
            versions = workspace.metadata.list_versions("model", MODEL)
            version = next((v.version for v in versions if v.node_id == "register"), None)
            if version is None:
                raise RuntimeError(
                    f"no version of model {MODEL!r} was registered by node 'register' (last "
                    f"week's model); create route {ROUTE!r} by hand: lockgate routes set "
                    f"{ROUTE} model:{MODEL}@VERSION=100"
                ) from None
            registry.promote(
                workspace,
                MODEL,
                version,
                "production",
                actor=routes.run_actor(run_id),
                reason="first week: last week's model is in production",
            )
            route = routes.set_route(
                workspace,
                ROUTE,
                [RouteTarget(MODEL, version, 100.0)],
                by=routes.run_actor(run_id),
                reason="first week: serve last week's model",
                run_id=run_id,
            )
            bootstrapped = True
        return {
            "route": ROUTE,
            "version": route.version,
            "targets": route.weights,
            "bootstrapped": bootstrapped,
        }
    finally:
        workspace.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Gateway:
    """`lockgate gateway` in a subprocess on a free loopback port, for this task only."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.log = Path(tempfile.mkstemp(prefix="weekly-finetune-gateway-", suffix=".log")[1])
        argv = [sys.executable, "-m", "lockgate", "gateway", "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on a fresh connection (for the slow paths: health, routes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            return _request(connection, method, path, body)
        finally:
            connection.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"lockgate gateway exited {self.process.returncode}: {self.tail()}"
                )
            try:
                status, routes = self.call("GET", "/v1/routes")
                if status == 200 and ROUTE in routes:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"lockgate gateway did not serve route {ROUTE!r} in {timeout:g} s: {self.tail()}"
        )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        # SIGTERM: the gateway writes every queued sample before it exits.
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.unlink(missing_ok=True)


def _request(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


@lg.task(timeout=300)
def live_traffic(route: dict[str, Any], week: str) -> dict[str, Any]:
    """Play the week's customers on the gateway until the canary has decided.

    Starts `lockgate gateway`, then threads send next week's tickets to the
    route (`key` = the customer, so each keeps one model) and report whether
    each reached the right team (`resolved`, the canary's metric). Stops once
    the route went from one target to two (the canary started) and back to one
    (it promoted or rolled back), or after MAX_REQUESTS.
    """
    run_id = lg.current().run_id
    monday = (dt.date.fromisoformat(week) + dt.timedelta(days=7)).isoformat()
    tickets = transcripts(monday, MAX_REQUESTS)
    gateway = _Gateway()
    stop = threading.Event()
    served: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    numbers = iter(range(len(tickets)))

    def customer() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        try:
            while not stop.is_set():
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                ticket = tickets[n]
                request_id = f"{run_id}-{n}"
                status, answer = _request(
                    connection,
                    "POST",
                    f"/v1/routes/{ROUTE}/predict",
                    {
                        "request_id": request_id,
                        "key": f"customer-{n}",
                        "inputs": [ticket["question"]],
                    },
                )
                if status != 200:
                    with lock:
                        errors.append(f"predict {status}: {answer}")
                    continue
                ok = answer["output"][0] == ticket["product_area"]
                with lock:
                    served[answer["model"]] += 1
                    resolved[answer["model"]] += ok
                feedback = {"request_id": request_id, "metric": "resolved", "value": float(ok)}
                _request(connection, "POST", f"/v1/routes/{ROUTE}/feedback", feedback)
        except Exception as exc:  # reported below; the other customers go on
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    try:
        gateway.wait_ready()
        threads = [threading.Thread(target=customer, daemon=True) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        seen: list[dict[str, float]] = []
        started = time.monotonic()
        while any(t.is_alive() for t in threads):
            _, routes = gateway.call("GET", "/v1/routes")
            targets = routes[ROUTE]["targets"]
            if not seen or seen[-1] != targets:
                seen.append(targets)
            if len(seen) >= 2 and any(len(s) > 1 for s in seen) and len(targets) == 1:
                break  # the canary started and has decided
            if all(len(s) == 1 for s in seen) and time.monotonic() - started > 60:
                raise RuntimeError(
                    f"the canary did not shift route {ROUTE!r} within 60 s; run weekly_finetune "
                    "with the process executor (the default): with `inline` this task blocks it"
                )
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        gateway.stop()
    if len(errors) > len(tickets) // 100:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[:3]}")
    summary = {
        "requests": sum(served.values()),
        "route_states": seen,
        "models": {
            label: {"served": served[label], "resolved": round(resolved[label] / served[label], 4)}
            for label in sorted(served)
        },
        "errors": len(errors),
    }
    lg.current().logger.info("live traffic: %s", json.dumps(summary))
    return summary


@lg.pipeline(schedule="0 3 * * 1", timezone="UTC")
def weekly_finetune(
    week: str = "2026-11-23",
    regression: bool = False,
    c_values: str = "0.01,0.1,1,10",
    logical_date: str = "",
):
    """Train on the week's tickets, gate, register, canary at 5%, then promote or roll back."""
    week = week_of(week, logical_date)
    last_week = train_last_weeks_model(week)
    incumbent = lg.register(
        last_week,
        name=MODEL,
        scores=lg.gate(
            score_last_weeks_model(last_week, week), {"accuracy": ">= 0.7"}, name="incumbent_gate"
        ),
    )
    route = open_route(incumbent)

    export = export_week(week, regression)
    grid = c_grid(c_values)
    models = train_candidate.map(grid, export=export)
    best = pick_best(models, score_candidate.map(models, export=export), grid)
    scores = lg.evaluate(predict_holdout(best, export), SUITE, by="product_area")
    checked = lg.gate(scores, {"accuracy": ">= 0.9", "macro_f1": ">= 0.9"}, name="offline_gate")
    candidate = lg.register(best, name=MODEL, scores=checked)

    live_traffic(route, week, after=[candidate])
    return lg.canary(
        route=ROUTE, candidate=candidate, metric="resolved", model=MODEL, after=[route], **CANARY
    )
