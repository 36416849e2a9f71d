"""Data sensors: a new version of a dataset, model or prompt starts a pipeline.

`triggers=[lg.on_new_version("dataset:transcripts")]` queues one run per new
version, keyed `version:dataset:transcripts@7`, with the run pinned to that
version (a later version does not sneak in before it starts). The key makes
it exactly once however many servers look. A sensor that never fired starts
with the current latest version; after that it fires for every version newer
than the last one it fired for, so versions created while no server ran are
not missed.
"""

from __future__ import annotations

import logging

from lockgate.errors import LockgateError
from lockgate.model.schedules import VersionTrigger
from lockgate.model.states import Trigger
from lockgate.service.catalog import Catalog, Entry
from lockgate.service.compose import Workspace
from lockgate.service.enqueue import Enqueued, enqueue

log = logging.getLogger("lockgate.sensors")

#: Versions a sensor looks back over in one pass.
LOOKBACK = 100


def sensor_pass(workspace: Workspace, catalog: Catalog) -> list[Enqueued]:
    """Queue a run for every new version a pipeline's sensors watch; return those created."""
    created: list[Enqueued] = []
    for entry in catalog:
        for trigger in entry.pipeline.options.triggers:
            if not isinstance(trigger, VersionTrigger):
                continue
            try:
                created += _fire(workspace, entry, trigger)
            except LockgateError as exc:
                log.error("sensor %s of %s: %s", trigger.key, entry.pipeline.name, exc)
    return created


def _fire(workspace: Workspace, entry: Entry, trigger: VersionTrigger) -> list[Enqueued]:
    store = workspace.metadata
    versions = store.list_versions(trigger.kind, trigger.name, limit=LOOKBACK)
    if not versions:
        return []
    prefix = trigger.key + "@"
    fired = [int(key[len(prefix) :]) for key in store.trigger_keys(entry.pipeline.name, prefix)]
    newest = max(fired, default=None)
    if newest is None:
        wanted = [versions[0].version]  # newest first: a fresh sensor takes the latest only
    else:
        wanted = sorted(v.version for v in versions if v.version > newest)
    created = []
    for version in wanted:
        result = enqueue(
            workspace,
            entry.pipeline,
            trigger=Trigger.SENSOR,
            trigger_key=f"{prefix}{version}",
            pins={(trigger.kind, trigger.name): version},
            pipeline_ref=entry.ref,
        )
        if result.created:
            created.append(result)
    return created
