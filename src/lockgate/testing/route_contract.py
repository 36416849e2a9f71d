"""The routes part of the `MetadataStore` contract (mixed into `MetadataStoreContract`).

A route change writes the new state and its log row together, with the state
it replaced; versions are consecutive; a rollback restores the previous state
as a new version; a stale `expected_version` is refused; concurrent writers
lose no update. Gateway samples come back in their window with feedback
merged into their scores.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from lockgate.errors import RouteConflictError, RouteNotFoundError, RouteStateError
from lockgate.ports.metadata import MetadataStore
from lockgate.ports.routes import Feedback, GatewaySample, RouteTarget, targets_of

T0 = 1_790_000_000.0

A3 = RouteTarget("support-bot", 3, 100.0)


def split(old: float, new: float) -> tuple[RouteTarget, RouteTarget]:
    """support-bot@3 at `old` percent and support-bot@4 at `new`."""
    return RouteTarget("support-bot", 3, old), RouteTarget("support-bot", 4, new)


def sample(request_id: str, at: float, **scores: float) -> GatewaySample:
    """A served sample of support-bot@3 for `request_id`."""
    return GatewaySample(
        route="bot",
        request_id=request_id,
        target="model:support-bot@3",
        cohort="serve",
        route_version=1,
        latency_s=0.01,
        scores=scores,
        at=at,
    )


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) on threads released at once; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def nudge(store: MetadataStore, by: str, at: float) -> None:
    """Move one percent from @3 to @4, reading first: retried when another writer came between."""
    while True:
        route = store.get_route("bot")
        old, new = route.targets
        try:
            store.change_route(
                "bot",
                targets=split(old.weight - 1, new.weight + 1),
                mirror=None,
                action="shift",
                by=by,
                at=at,
                expected_version=route.version,
            )
            return
        except RouteConflictError:
            continue


def assert_no_lost_update(store: MetadataStore, changes: int) -> None:
    """The log holds `changes` changes with versions 1..n, each replacing the one before it."""
    log = list(reversed(store.route_changes("bot", limit=changes + 10)))
    assert [c.version for c in log] == list(range(1, changes + 1))
    for before, after in itertools.pairwise(log):
        assert after.previous == before.state
    route = store.get_route("bot")
    assert route.version == changes and route.state() == log[-1].state


class RouteStoreContract:
    """Behaviour of routes and gateway samples every metadata store must show."""

    def test_an_unknown_route_is_not_found_and_says_how_to_create_it(
        self, store: MetadataStore
    ) -> None:
        assert store.list_routes() == []
        with pytest.raises(RouteNotFoundError, match="lockgate routes set bot"):
            store.get_route("bot")
        with pytest.raises(RouteNotFoundError):
            store.rollback_route("bot", by="cli:ann", at=T0)

    def test_every_change_is_logged_with_who_why_and_the_state_it_replaced(
        self, store: MetadataStore
    ) -> None:
        first = store.change_route(
            "bot", targets=[A3], mirror=None, action="set", by="cli:ann", at=T0, reason="launch"
        )
        assert (first.version, first.targets, first.updated_by) == (1, (A3,), "cli:ann")
        mirror = RouteTarget("support-bot", 5)
        second = store.change_route(
            "bot",
            targets=split(95, 5),
            mirror=mirror,
            action="shift",
            by="api:deploy",
            at=T0 + 1,
            reason="try @4",
        )
        assert second.version == 2
        assert store.get_route("bot") == second
        assert second.weights == {"model:support-bot@3": 95.0, "model:support-bot@4": 5.0}
        assert [r.name for r in store.list_routes()] == ["bot"]
        newest, oldest = store.route_changes("bot")
        assert (oldest.action, oldest.by, oldest.reason, oldest.previous) == (
            "set",
            "cli:ann",
            "launch",
            None,
        )
        assert (newest.action, newest.by, newest.reason, newest.at) == (
            "shift",
            "api:deploy",
            "try @4",
            T0 + 1,
        )
        assert newest.previous == first.state() == oldest.state
        assert targets_of(newest.state) == (split(95, 5), mirror)
        assert [c.version for c in store.route_changes("bot", limit=1)] == [2]

    def test_rollback_restores_the_previous_state_as_a_new_version(
        self, store: MetadataStore
    ) -> None:
        store.change_route("bot", targets=[A3], mirror=None, action="set", by="cli:a", at=T0)
        with pytest.raises(RouteStateError, match="no earlier state"):
            store.rollback_route("bot", by="cli:a", at=T0 + 1)
        store.change_route(
            "bot",
            targets=split(50, 50),
            mirror=RouteTarget("support-bot", 5),
            action="shift",
            by="cli:a",
            at=T0 + 2,
        )
        back = store.rollback_route("bot", by="cli:b", at=T0 + 3, reason="errors up")
        assert (back.version, back.targets, back.mirror) == (3, (A3,), None)
        assert back.updated_by == "cli:b"
        (last, *_) = store.route_changes("bot")
        assert (last.action, last.reason, last.version) == ("rollback", "errors up", 3)
        assert targets_of(last.previous or {}) == (split(50, 50), RouteTarget("support-bot", 5))
        # A second rollback undoes the first.
        again = store.rollback_route("bot", by="cli:b", at=T0 + 4, action="canary_rollback")
        assert (again.version, again.targets) == (4, split(50, 50))
        assert store.route_changes("bot", limit=1)[0].action == "canary_rollback"

    def test_a_stale_expected_version_is_refused_and_changes_nothing(
        self, store: MetadataStore
    ) -> None:
        with pytest.raises(RouteConflictError, match="expected version 3"):
            store.change_route(
                "bot", targets=[A3], mirror=None, action="set", by="x", at=T0, expected_version=3
            )
        store.change_route(
            "bot", targets=[A3], mirror=None, action="set", by="x", at=T0, expected_version=0
        )
        with pytest.raises(RouteConflictError, match="found it at version 1"):
            store.change_route(
                "bot",
                targets=split(1, 99),
                mirror=None,
                action="shift",
                by="x",
                at=T0,
                expected_version=0,
            )
        with pytest.raises(RouteConflictError):
            store.rollback_route("bot", by="x", at=T0, expected_version=7)
        assert store.get_route("bot").version == 1 and len(store.route_changes("bot")) == 1

    def test_a_runs_route_changes_are_listed_for_its_record(self, store: MetadataStore) -> None:
        from lockgate.testing.metadata_contract import new_run

        store.create_run(new_run("r-canary"))
        store.change_route("bot", targets=[A3], mirror=None, action="set", by="cli:a", at=T0)
        store.change_route(
            "bot",
            targets=split(95, 5),
            mirror=None,
            action="canary_start",
            by="run:r-canary",
            at=T0 + 1,
            run_id="r-canary",
        )
        store.rollback_route(
            "bot", by="run:r-canary", at=T0 + 2, run_id="r-canary", action="canary_rollback"
        )
        made = store.run_route_changes("r-canary")
        assert [(c.action, c.version, c.run_id) for c in made] == [
            ("canary_start", 2, "r-canary"),
            ("canary_rollback", 3, "r-canary"),
        ]
        assert store.run_route_changes("r-other") == []

    def test_writers_racing_on_one_route_lose_no_update(self, store: MetadataStore) -> None:
        store.change_route(
            "bot", targets=split(100, 0), mirror=None, action="set", by="cli:a", at=T0
        )
        threads, each = 4, 5

        def writer(i: int) -> None:
            for _ in range(each):
                nudge(store, f"w{i}", T0 + i)

        together(threads, writer)
        assert store.get_route("bot").weights == {
            "model:support-bot@3": 100.0 - threads * each,
            "model:support-bot@4": float(threads * each),
        }
        assert_no_lost_update(store, 1 + threads * each)

    def test_blind_writers_are_serialized_into_one_consecutive_history(
        self, store: MetadataStore
    ) -> None:
        def shift(i: int) -> None:
            for j in range(5):
                store.change_route(
                    "bot",
                    targets=split(100 - i - j, i + j),
                    mirror=None,
                    action="shift",
                    by=f"w{i}",
                    at=T0 + j,
                )

        together(4, shift)
        assert_no_lost_update(store, 20)

    def test_samples_come_back_in_their_window_with_feedback_merged(
        self, store: MetadataStore
    ) -> None:
        store.record_samples([])
        store.record_samples(
            [
                sample("q1", T0, groundedness=0.9),
                sample("q2", T0 + 10, groundedness=float("nan")),
                sample("q3", T0 + 20),
                GatewaySample(
                    route="bot",
                    request_id="q1",
                    target="model:support-bot@5",
                    cohort="mirror",
                    route_version=1,
                    latency_s=0.2,
                    error="ValueError: boom",
                    at=T0,
                ),
                GatewaySample("other", "q1", "model:x@1", "serve", 1, 0.01, at=T0),
            ]
        )
        store.record_feedback(Feedback("bot", "q1", "thumbs", 0.0, T0 + 100))
        store.record_feedback(Feedback("bot", "q1", "thumbs", 1.0, T0 + 200))
        store.record_feedback(Feedback("bot", "q2", "groundedness", 0.4, T0 + 300))
        store.record_feedback(Feedback("other", "q3", "thumbs", 1.0, T0 + 300))
        got = store.route_samples("bot", since=T0, until=T0 + 20)
        assert [(s.request_id, s.cohort) for s in got] == [
            ("q1", "serve"),
            ("q1", "mirror"),
            ("q2", "serve"),
        ]
        served, mirrored, second = got
        assert served.scores == {"groundedness": 0.9, "thumbs": 1.0}
        assert (mirrored.error, mirrored.latency_s, mirrored.target) == (
            "ValueError: boom",
            0.2,
            "model:support-bot@5",
        )
        assert second.scores == {"groundedness": 0.4}
        (late,) = store.route_samples("bot", since=T0 + 15)
        assert (late.request_id, late.scores) == ("q3", {})
        assert store.route_samples("nothing", since=0) == []
