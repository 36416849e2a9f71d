"""Data sensors: a new dataset version starts the pipeline exactly once, on that version."""

from __future__ import annotations

from lockgate.service.sensors import sensor_pass

PIPELINES = """
import lockgate as lg

@lg.task
def produce(rows: int) -> lg.Dataset:
    return lg.Dataset("transcripts", list(range(rows)))

@lg.task
def count(rows: list) -> int:
    return len(rows)

@lg.pipeline
def ingest(rows: int = 3):
    return produce(rows)

@lg.pipeline(triggers=[lg.on_new_version("dataset:transcripts")])
def refresh():
    return count(lg.Dataset.ref("transcripts"))
"""


def test_each_new_version_fires_exactly_once_pinned_to_that_version(project):
    import lockgate as lg

    project.write(PIPELINES)
    workspace = project.workspace()
    catalog = project.catalog(workspace)
    ingest = catalog.get("ingest").pipeline
    assert sensor_pass(workspace, catalog) == []  # no version yet: nothing to do

    assert lg.run(ingest, {"rows": 3}, executor="inline", workspace=workspace).ok
    first = sensor_pass(workspace, catalog)
    assert len(first) == 1
    assert sensor_pass(workspace, catalog) == []  # the same version never fires twice

    # Two versions land before the sensor looks again: one run each, in order.
    for rows in (4, 5):
        assert lg.run(ingest, {"rows": rows}, executor="inline", workspace=workspace).ok
    # The same content again is the same version: no new run for it.
    assert lg.run(ingest, {"rows": 5}, executor="inline", workspace=workspace).ok
    later = sensor_pass(workspace, catalog)
    assert len(later) == 2
    refreshes = sorted(
        workspace.metadata.list_runs(limit=100, pipeline="refresh"), key=lambda r: r.created_at
    )
    assert [r.trigger_key for r in refreshes] == [
        "version:dataset:transcripts@1",
        "version:dataset:transcripts@2",
        "version:dataset:transcripts@3",
    ]
    assert {r.trigger for r in refreshes} == {"sensor"}
    # Each run consumes the version that triggered it, not the latest.
    pinned = [workspace.metadata.run_versions(r.id)[0].version for r in refreshes]
    assert pinned == [1, 2, 3]
    # A restarted server (a fresh catalog, same database) fires nothing new.
    assert sensor_pass(workspace, project.catalog(workspace)) == []
