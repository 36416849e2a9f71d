"""The reliability suite's table: fault scenarios, contention, bad input and fuzzing.

Every scenario (tests/chaos, and the REST API fuzzing in tests/server) runs a
short version in `make test` and the long one under `make chaos`
(LOCKGATE_CHAOS=full). Each test takes the `chaos` fixture, asks
it how many iterations to run, and records what it found; at the end pytest
prints one table (scenario, iterations, failures, duplicates found, records
verified), and LOCKGATE_CHAOS_REPORT=PATH also writes it as Markdown.
Randomised scenarios draw from LOCKGATE_CHAOS_SEED (printed with each table
row and on failure) so a failing iteration can be replayed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FULL = os.environ.get("LOCKGATE_CHAOS", "short") == "full"
SEED = int(os.environ.get("LOCKGATE_CHAOS_SEED", "20261126"))


@dataclass
class Scenario:
    """What one scenario ran and found; a row of the table."""

    name: str
    seed: int = SEED
    iterations: int = 0
    failures: int = 0
    duplicates: int = 0
    verified: int = 0
    problems: list[str] = field(default_factory=list)

    def size(self, short: int, full: int) -> int:
        """How many iterations to run: `short` in make test, `full` in make chaos."""
        return full if FULL else short

    def rng(self) -> random.Random:
        """The scenario's own seeded random source (same seed -> same faults)."""
        return random.Random(f"{self.seed}:{self.name}")

    def record(
        self, problems: list[str] | None = None, *, duplicates: int = 0, verified: int = 0
    ) -> None:
        """Count one iteration: failed if it found any problem."""
        self.iterations += 1
        self.duplicates += duplicates
        self.verified += verified
        if problems:
            self.failures += 1
            self.problems.extend(f"iteration {self.iterations}: {p}" for p in problems)

    def summary(self) -> str:
        """How many iterations failed, the first problems, and the seed that replays them."""
        return (
            f"{self.failures} of {self.iterations} iterations of {self.name!r} failed "
            f"(replay: LOCKGATE_CHAOS_SEED={self.seed}):\n" + "\n".join(self.problems[:20])
        )

    def check(self) -> None:
        """Fail the test if any iteration failed, naming the seed to replay it."""
        assert self.iterations > 0, f"scenario {self.name!r} ran no iteration"
        assert not self.problems, self.summary()


_rows: list[Scenario] = []


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """A `Scenario` named after the test; its row is added to the table at the end."""
    marker = request.node.get_closest_marker("scenario")
    name = marker.args[0] if marker else request.node.name
    scenario = Scenario(name)
    yield scenario
    if scenario.iterations:
        _rows.append(scenario)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the `scenario` marker: the row's name in the table."""
    config.addinivalue_line("markers", "scenario(name): the name of a chaos table row")


def table() -> str:
    """The rows as a Markdown table."""
    lines = [
        f"Mode: {'full (make chaos)' if FULL else 'short (make test)'}, LOCKGATE_CHAOS_SEED={SEED}",
        "",
        "| scenario | iterations | failures | duplicates found | records verified |",
        "|---|---:|---:|---:|---:|",
    ]
    # Tests that share a row name (one scenario split over several tests) add up.
    merged: dict[str, Scenario] = {}
    for r in _rows:
        row = merged.setdefault(r.name, Scenario(r.name))
        row.iterations += r.iterations
        row.failures += r.failures
        row.duplicates += r.duplicates
        row.verified += r.verified
    lines += [
        f"| {r.name} | {r.iterations} | {r.failures} | {r.duplicates} | {r.verified} |"
        for r in sorted(merged.values(), key=lambda r: r.name)
    ]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the table (and write it where LOCKGATE_CHAOS_REPORT says)."""
    if not _rows:
        return
    terminalreporter.section("lockgate chaos")
    terminalreporter.write(table())
    target = os.environ.get("LOCKGATE_CHAOS_REPORT")
    if target:
        Path(target).write_text(table())
        terminalreporter.write_line(f"table written to {target}")
