"""The index_rebuild example: a new transcripts version rebuilds the index through the server.

The server's own pass (`Server.loop_once`: schedules, sensors, then the
launcher forking a driver process) starts the rebuilds, never `lg.run`. The
project is the example's own lockgate.toml (index_rebuild plus nightly_eval).
The transcripts versions are landed by a small stand-in for nightly_eval's
ingest (the same rows, from `lockgate.demo.corpus.transcripts(day)`), which
spares the test nightly_eval's evaluation of 120 answers per day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import lockgate as lg
from lockgate.model.states import RunState
from lockgate.ports.metadata import RunRecord
from lockgate.server.daemon import Server, options_for
from lockgate.service import record as record_service
from lockgate.service.catalog import load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.lineage import resolve_artifact, walk
from lockgate.service.loader import load_module, load_pipeline
from lockgate.service.project import parse

FEED = '''
"""Stands in for the nightly_eval example: one day of transcripts as a dataset version."""
import lockgate as lg
from lockgate.demo.corpus import transcripts

@lg.task
def land(day: str) -> lg.Dataset:
    return lg.Dataset("transcripts", transcripts(day), metadata={"day": day})

@lg.pipeline
def land_transcripts(day: str = "2026-11-24"):
    return land(day)
'''


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_copy: Callable[[str], Path]
) -> Path:
    """Copies of the index_rebuild and nightly_eval examples; the project is index_rebuild's.

    Its lockgate.toml lists nightly_eval's pipelines too, as the example ships it.
    """
    example_copy("nightly_eval")
    root = example_copy("index_rebuild")  # the working directory from here on
    (tmp_path / "feed.py").write_text(FEED)
    monkeypatch.setenv("LOCKGATE_CONFIG", str(root / "lockgate.toml"))
    return root


def rebuilds(workspace: Workspace) -> list[RunRecord]:
    runs = workspace.metadata.list_runs(limit=100, pipeline="index_rebuild")
    return sorted(runs, key=lambda r: r.created_at)


def serve_until_done(server: Server, run_id: str, timeout: float = 120.0) -> RunRecord:
    """Server passes until the run ends (its driver is a child process of the launcher)."""
    store = server.workspace.metadata
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.loop_once()
        record = store.get_run(run_id)
        if record.status.terminal and not server.state.launcher.children:
            return record
        time.sleep(0.2)
    log = Path(server.workspace.settings.home) / "drivers" / f"{run_id}.log"
    pytest.fail(f"run {run_id} did not end in {timeout:g} s; driver log:\n{log.read_text()}")


def test_each_new_transcripts_version_rebuilds_the_index_once_through_the_sensor(project):
    workspace = Workspace(project=parse(project / "lockgate.toml"))
    try:
        catalog = load_catalog(workspace.project)
        assert {e.pipeline.name for e in catalog} == {"nightly_eval", "index_rebuild"}
        land = load_pipeline(f"{project.parent / 'feed.py'}:land_transcripts")
        options = options_for(workspace, max_concurrent_runs=1, executor="inline")
        server = Server(workspace, options, catalog=catalog)
        server.loop_once()
        assert rebuilds(workspace) == []  # no transcripts yet: the sensor has nothing to fire on

        # Day 1 lands: the next server pass queues and launches exactly one rebuild.
        assert lg.run(land, {"day": "2026-11-24"}, executor="inline", workspace=workspace).ok
        server.loop_once()
        (first,) = rebuilds(workspace)
        assert first.trigger == "sensor"
        assert first.trigger_key == "version:dataset:transcripts@1"
        done = serve_until_done(server, first.id)
        log = Path(workspace.settings.home) / "drivers" / f"{first.id}.log"
        assert done.status is RunState.SUCCEEDED, log.read_text()
        assert len(rebuilds(workspace)) == 1  # passes while it ran fired nothing more

        # The index version says which transcripts vouched for it, and how well it retrieved.
        store = workspace.metadata
        (index,) = store.list_versions("dataset", "support-index")
        assert index.metadata["transcripts_days"] == ["2026-11-24"]
        assert index.metadata["articles"] == 24
        # Measured: recall@1 0.983 and recall@3 1.0 on 2026-11-24 (0.93-0.99 / 1.0 on other days).
        assert index.metadata["recall_at_1"] >= 0.95
        assert index.metadata["recall_at_3"] == 1.0
        upstream = walk(workspace, resolve_artifact(workspace, "dataset:support-index@1"))
        assert "dataset:transcripts@1" in upstream.dataset_versions
        assert "dataset:knowledge-base@1" in upstream.dataset_versions

        document = record_service.build(workspace, first.id)
        assert [i["ref"] for i in document["inputs"]] == ["dataset:transcripts@1"]
        (gate,) = document["gates"]
        assert gate["node"] == "recall_gate" and gate["passed"]
        assert document["verification"]["ok"]

        # The semantic cache answers a repeat of a frequent question, and nothing unrelated.
        (cache_version,) = store.list_versions("dataset", "semantic-cache")
        cache = workspace.artifacts.get(cache_version.ref, trusted=True, what="semantic cache")
        assert cache_version.metadata["entries"] == len(cache["entries"]) == 10
        example = load_module(str(project / "pipelines.py"))
        top = cache["entries"][0]
        plain = top["question"].split(", ", 1)[-1].split("! ", 1)[-1].split(": ", 1)[-1]
        hit = example.lookup(cache, f"Hi, {plain}")
        assert hit is not None and hit["article_id"] == top["article_id"]
        assert hit["answer"] == top["answer"]
        assert example.lookup(cache, "What is the boiling point of water on Mars?") is None

        # Day 2 lands: one more rebuild, pinned to version 2; the articles are not re-embedded.
        assert lg.run(land, {"day": "2026-11-25"}, executor="inline", workspace=workspace).ok
        server.loop_once()
        runs = rebuilds(workspace)
        assert [r.trigger_key for r in runs] == [
            "version:dataset:transcripts@1",
            "version:dataset:transcripts@2",
        ]
        second = serve_until_done(server, runs[1].id)
        assert second.status is RunState.SUCCEEDED
        states = {t.node_id: t.state.value for t in store.task_runs(second.id)}
        assert states["build_index"] == "cached"
        latest = store.resolve_version("dataset", "support-index", None)
        assert latest is not None and latest.version == 2
        assert latest.metadata["transcripts_days"] == ["2026-11-25"]
        upstream = walk(workspace, resolve_artifact(workspace, "dataset:support-index@2"))
        assert "dataset:transcripts@2" in upstream.dataset_versions
        assert "dataset:transcripts@1" not in upstream.dataset_versions

        # No new version: further passes start nothing.
        server.loop_once()
        server.loop_once()
        assert len(rebuilds(workspace)) == 2
    finally:
        workspace.close()
