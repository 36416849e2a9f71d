"""OpenLineage events for runs and task runs: the listener behind `[openlineage]`.

`OpenLineageEmitter` is a `RunListener`: it turns the committed state changes
of a run into OpenLineage `RunEvent`s built with openlineage-python's classes
(`event_v2`, `facet_v2`) and sent by `OpenLineageClient` through its own
transports (console: INFO log lines on stderr; file: NDJSON appended, one
event per line; http: POST with an optional API key, 5 s timeout, 2 retries).
`start_run` and `resume_run` build one per drive, only when lockgate.toml
turns a transport on; openlineage is imported only then.

Mapping (the contract with lineage consumers; see docs/lineage.md):

- A *drive* of a lockgate run (the first run, or one resume) is one
  OpenLineage run of job `<pipeline>`; an *attempt* of a task run is one of
  job `<pipeline>.<node>` (`<pipeline>.<node>[<i>]` for a map item) whose
  `parent` facet names its drive. Run ids are uuid5 of lockgate ids
  (`run_uuid`, `attempt_uuid`, `node_uuid`), so anyone can derive them again.
- States: succeeded/cached → COMPLETE; failed/gate_failed → FAIL with the
  `errorMessage` facet; cancelled/skipped → ABORT; retrying → FAIL of that
  attempt (the retry is a new OpenLineage run). A run that stops `waiting`
  for approval gets no terminal event: the drive that resumes it continues
  the same OpenLineage run (no second START) and ends it.
- A task run that ends without an attempt of this drive (cached, skipped,
  cancelled before it was queued, a map node's whole-node row) is one
  OpenLineage run per drive (`node_uuid`); a terminal event whose START was
  never sent is preceded by one at the same time.
- Datasets are artifacts in the configured namespace, named by their named
  version (`dataset:transcripts`, version facet `7`) or else by URI (version
  facet: the sha256). A task run's terminal event lists what it consumed and
  produced; a drive's START lists the versions the run consumes, its
  terminal event the versions the drive created or registered.
- A drive that resumes a run whose coordinator died first FAILs the dead
  drive and its attempts that had started (recorded `lockgate.Orphaned`).

Invariants: every OpenLineage run gets exactly one START, sent first, and
exactly one terminal event (I7), as far as this process sees; emission never
changes a run's outcome (errors are logged and swallowed). Events carry no
parameter values (S8), only `logical_date` as nominal time. The client's own
environment settings (OPENLINEAGE_DISABLED, openlineage.yml tags and
filters) still apply. Failpoint: `lineage.before_emit` (with the job name).
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate import __version__, failpoints
from lockgate.errors import ConfigError
from lockgate.model.states import EventKind, RunState, TaskState
from lockgate.ports.artifacts import URI_PREFIX
from lockgate.ports.metadata import EventRecord, MetadataStore, RunRecord
from lockgate.service.project import FILENAME, TRANSPORTS, OpenLineageSettings

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import JobFacet, RunFacet

logger = logging.getLogger(__name__)

#: The `producer` of every event and facet.
PRODUCER = f"https://github.com/lockgate/lockgate/tree/{__version__}"
#: uuid5 namespace of the OpenLineage run ids derived from lockgate ids.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/lockgate/lockgate/openlineage")
#: Short retries: emission runs in the coordinator's loop.
HTTP_RETRY = {
    "total": 2,
    "connect": 2,
    "read": 2,
    "backoff_factor": 0.1,
    "status_forcelist": [500, 502, 503, 504],
    "allowed_methods": ["HEAD", "POST"],
}

_TERMINAL = {
    TaskState.SUCCEEDED: "COMPLETE",
    TaskState.CACHED: "COMPLETE",
    TaskState.FAILED: "FAIL",
    TaskState.RETRYING: "FAIL",
    TaskState.SKIPPED: "ABORT",
    TaskState.CANCELLED: "ABORT",
}
_RUN_TERMINAL = {
    RunState.SUCCEEDED: "COMPLETE",
    RunState.FAILED: "FAIL",
    RunState.GATE_FAILED: "FAIL",
    RunState.CANCELLED: "ABORT",
}


def run_uuid(run_id: str, drive: int) -> str:
    """The OpenLineage run id of drive `drive` (1-based) of lockgate run `run_id`."""
    return str(uuid.uuid5(NAMESPACE, f"run:{run_id}:drive:{drive}"))


def attempt_uuid(run_id: str, label: str, attempt: int) -> str:
    """The OpenLineage run id of attempt `attempt` of task run `label` (`node` or `node[i]`)."""
    return str(uuid.uuid5(NAMESPACE, f"task:{run_id}:{label}:attempt:{attempt}"))


def node_uuid(run_id: str, label: str, drive: int) -> str:
    """The OpenLineage run id of a task run that ended in drive `drive` without an attempt."""
    return str(uuid.uuid5(NAMESPACE, f"task:{run_id}:{label}:drive:{drive}"))


@dataclass(slots=True)
class _Drive:
    """What the emitter knows about the drive of one run it is hearing."""

    record: RunRecord
    number: int  # 1-based count of the run's `run_started` events
    segment: int  # the drive whose START opened the OpenLineage run this drive continues
    since: int  # id of that drive's `run_started` event
    dead: int | None = None  # an earlier drive whose coordinator died, left open
    resumed_at: float | None = None
    queued: set[tuple[str, int]] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    task_runs: dict[tuple[str, int | None], int] = field(default_factory=dict)

    @property
    def ol_id(self) -> str:
        return run_uuid(self.record.id, self.segment)


class OpenLineageEmitter:
    """A `RunListener` that sends OpenLineage events for every run it hears."""

    def __init__(
        self, metadata: MetadataStore, settings: OpenLineageSettings, *, config: Path | None = None
    ) -> None:
        """Build the client and its transport from `[openlineage]` settings.

        Args:
            metadata: where runs, attempts, lineage edges and versions are read.
            settings: the parsed `[openlineage]` section (transport not "off").
            config: the config file the settings came from (named in errors).

        Raises:
            ConfigError: the settings are incomplete, or openlineage-python is
                not installed; the message names the config file.
        """
        where = f"{config or FILENAME}: [openlineage]"
        if settings.transport not in TRANSPORTS or not settings.enabled:
            raise ConfigError(
                f"{where} transport = {settings.transport!r}; choose one of "
                f"{', '.join(t for t in TRANSPORTS if t != 'off')}"
            )
        if settings.transport == "file" and settings.path is None:
            raise ConfigError(f"{where} transport = 'file' needs path = 'lineage.ndjson'")
        if settings.transport == "http" and not settings.url:
            raise ConfigError(f"{where} transport = 'http' needs url = 'http://host:port'")
        try:
            self.client = _client(settings)
        except ImportError as exc:
            raise ConfigError(
                f"{where} transport = {settings.transport!r} needs the openlineage-python "
                f"package, which is not installed ({exc}): pip install 'lockgate[lineage]', "
                "or set transport = 'off'"
            ) from None
        except (ValueError, OSError) as exc:  # a malformed url; a path that cannot be made
            raise ConfigError(f"{where} {exc}") from None
        self.metadata = metadata
        self.namespace = settings.namespace
        self.failures = 0
        self.sent = 0
        self._drives: dict[str, _Drive] = {}

    # --- RunListener ------------------------------------------------------------

    def on_run(self, *, run_id: str, state: RunState, at: float, **future: Any) -> None:
        """Open the drive's OpenLineage run when it starts; end it when the run ends."""
        try:
            if state is RunState.RUNNING:
                self._begin(run_id, at)
            elif state in _RUN_TERMINAL:
                self._end(run_id, state, at, future.get("error"))
            elif state is RunState.WAITING:
                self.client.close()
        except Exception:
            logger.warning("OpenLineage: could not report run %s %s", run_id, state, exc_info=True)

    def on_task(
        self,
        *,
        run_id: str,
        node_id: str,
        map_index: int | None,
        state: TaskState,
        attempt: int,
        at: float,
        error: str | None,
        **future: Any,
    ) -> None:
        """Send START when an attempt runs, and its terminal event when it ends."""
        try:
            self._task(run_id, node_id, map_index, state, attempt, at, error)
        except Exception:
            logger.warning(
                "OpenLineage: could not report node %s of run %s", node_id, run_id, exc_info=True
            )

    # --- runs -------------------------------------------------------------------

    def _begin(self, run_id: str, at: float) -> None:
        drive = self._read_drive(run_id)
        self._drives[run_id] = drive
        if drive.dead is not None:
            self._close_dead(drive, at)
        if drive.segment == drive.number:
            inputs = [
                self._input(f"{v.kind}:{v.name}", str(v.version))
                for v in self.metadata.run_versions(run_id)
            ]
            self._run_event(drive, "START", at, inputs=inputs)

    def _end(self, run_id: str, state: RunState, at: float, error: str | None) -> None:
        drive = self._drives.get(run_id) or self._read_drive(run_id)
        if drive.ol_id in drive.ended:
            return
        outputs = []
        for event in self.metadata.events(run_id):
            if event.id >= drive.since and event.kind in (
                EventKind.VERSION_CREATED,
                EventKind.MODEL_REGISTERED,
            ):
                payload = event.payload
                name = f"{payload.get('kind', 'model')}:{payload['name']}"
                outputs.append(self._output(name, str(payload["version"])))
        event_type = _RUN_TERMINAL[state]
        message = error or f"run {run_id} ended {state.value}" if event_type == "FAIL" else None
        self._run_event(drive, event_type, at, outputs=outputs, error=message)
        if self.failures:
            logger.warning(
                "OpenLineage: %d of %d events for run %s were not sent (see the first error above)",
                self.failures,
                self.failures + self.sent,
                run_id,
            )
        self.failures = self.sent = 0
        self.client.close()

    def _read_drive(self, run_id: str) -> _Drive:
        """Number this drive from the run's events, and see what an earlier one left open."""
        number = segment = since = 0
        dead: int | None = None
        resumed: EventRecord | None = None
        resumed_at = None
        for event in self.metadata.events(run_id):
            if event.kind is EventKind.RUN_RESUMED:
                resumed = event
            elif event.kind is EventKind.RUN_STARTED:
                number += 1
                previous = resumed.payload.get("previous_status") if resumed else None
                dead = segment if previous == RunState.RUNNING.value and segment else None
                resumed_at = resumed.at if resumed else None
                if previous != RunState.WAITING.value or not segment:
                    segment, since = number, event.id
                resumed = None
        record = self.metadata.get_run(run_id)
        return _Drive(record, max(number, 1), max(segment, 1), since, dead, resumed_at)

    def _close_dead(self, drive: _Drive, at: float) -> None:
        """FAIL what a coordinator that died left open: its attempts, map nodes and drive."""
        assert drive.dead is not None
        run_id, dead = drive.record.id, run_uuid(drive.record.id, drive.dead)
        why = "the coordinator stopped before this finished; the run was resumed"
        for attempt in self.metadata.attempts(run_id):
            if (
                attempt.error is not None
                and attempt.error.type == "lockgate.Orphaned"
                and attempt.started_at is not None
                and attempt.finished_at == drive.resumed_at
            ):
                label = _label(attempt.node_id, attempt.map_index)
                ol_id = attempt_uuid(run_id, label, attempt.number)
                self._task_event(drive, ol_id, label, "FAIL", at, error=why, parent=dead)
        for event in self.metadata.events(run_id):
            if (
                event.kind is EventKind.TASK_RESET
                and event.at == drive.resumed_at
                and event.attempt is None
                and event.payload.get("previous_state") == TaskState.RUNNING.value
                and event.node_id is not None
            ):
                label = _label(event.node_id, event.map_index)
                ol_id = node_uuid(run_id, label, drive.number - 1)
                self._task_event(drive, ol_id, label, "FAIL", at, error=why, parent=dead)
        self._emit(
            "FAIL",
            dead,
            drive.record.pipeline,
            at,
            run_facets={**self._run_facets(drive), **self._error(why)},
            job_facets=self._job_facets(drive.record, "PIPELINE"),
        )

    def _run_event(
        self,
        drive: _Drive,
        event_type: str,
        at: float,
        *,
        inputs: list[InputDataset] | None = None,
        outputs: list[OutputDataset] | None = None,
        error: str | None = None,
    ) -> None:
        if (
            event_type != "START"
            and drive.ol_id not in drive.started
            and drive.segment == drive.number
        ):
            self._run_event(drive, "START", at)
        (drive.started if event_type == "START" else drive.ended).add(drive.ol_id)
        self._emit(
            event_type,
            drive.ol_id,
            drive.record.pipeline,
            at,
            run_facets={**self._run_facets(drive), **self._error(error)},
            job_facets=self._job_facets(drive.record, "PIPELINE"),
            inputs=inputs,
            outputs=outputs,
        )

    # --- task runs ----------------------------------------------------------------

    def _task(
        self,
        run_id: str,
        node_id: str,
        map_index: int | None,
        state: TaskState,
        attempt: int,
        at: float,
        error: str | None,
    ) -> None:
        drive = self._drives.get(run_id)
        if drive is None:
            drive = self._drives[run_id] = self._read_drive(run_id)
        label = _label(node_id, map_index)
        if state is TaskState.QUEUED:
            drive.queued.add((label, attempt))
            return
        if (label, attempt) in drive.queued:
            ol_id = attempt_uuid(run_id, label, attempt)
        else:  # no attempt of this drive: one OpenLineage run per drive
            ol_id = node_uuid(run_id, label, drive.number)
        if state is TaskState.RUNNING:
            self._task_event(drive, ol_id, label, "START", at)
            return
        event_type = _TERMINAL.get(state)
        if event_type is None or ol_id in drive.ended:
            return  # waiting, pending; or an attempt that already ended (cancel after retrying)
        inputs, outputs = self._datasets(drive, node_id, map_index)
        message = (error or f"node {label!r} {state.value}") if event_type == "FAIL" else None
        self._task_event(drive, ol_id, label, event_type, at, inputs, outputs, message)

    def _task_event(
        self,
        drive: _Drive,
        ol_id: str,
        label: str,
        event_type: str,
        at: float,
        inputs: list[InputDataset] | None = None,
        outputs: list[OutputDataset] | None = None,
        error: str | None = None,
        parent: str | None = None,
    ) -> None:
        if event_type == "START" and ol_id in drive.started:
            return
        if event_type != "START" and ol_id not in drive.started and parent is None:
            self._task_event(drive, ol_id, label, "START", at)
        (drive.started if event_type == "START" else drive.ended).add(ol_id)
        from openlineage.client.facet_v2 import parent_run

        pipeline = drive.record.pipeline
        up = parent or drive.ol_id
        facet = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=up),
            job=parent_run.Job(namespace=self.namespace, name=pipeline),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=up),
                job=parent_run.RootJob(namespace=self.namespace, name=pipeline),
            ),
            producer=PRODUCER,
        )
        self._emit(
            event_type,
            ol_id,
            f"{pipeline}.{label}",
            at,
            run_facets={
                "parent": facet,
                **self._run_facets(drive, nominal=False),
                **self._error(error),
            },
            job_facets=self._job_facets(drive.record, "TASK"),
            inputs=inputs,
            outputs=outputs,
        )

    def _datasets(
        self, drive: _Drive, node_id: str, map_index: int | None
    ) -> tuple[list[InputDataset], list[OutputDataset]]:
        """The artifacts the task run consumed and produced, named by their versions."""
        key = (node_id, map_index)
        if key not in drive.task_runs:  # map items appear once their node expands
            drive.task_runs = {
                (r.node_id, r.map_index): r.id for r in self.metadata.task_runs(drive.record.id)
            }
        inputs: list[InputDataset] = []
        outputs: list[OutputDataset] = []
        for edge in self.metadata.task_run_edges([drive.task_runs[key]]):
            for name, version in self._names_of(edge.sha256):
                if edge.direction == "consumed":
                    inputs.append(self._input(name, version))
                else:
                    outputs.append(self._output(name, version))
        return inputs, outputs

    def _names_of(self, sha256: str) -> list[tuple[str, str]]:
        """(dataset name, version) for an artifact: its named versions, else its URI and hash."""
        # Not cached: a run can make an artifact it consumed a version later (register).
        versions = self.metadata.versions_of_artifact(sha256)
        names = [(f"{v.kind}:{v.name}", str(v.version)) for v in versions]
        return names or [(URI_PREFIX + sha256, sha256)]

    # --- building and sending -----------------------------------------------------

    def _input(self, name: str, version: str) -> InputDataset:
        from openlineage.client.event_v2 import InputDataset
        from openlineage.client.facet_v2 import dataset_version_dataset as dv

        facet = dv.DatasetVersionDatasetFacet(datasetVersion=version, producer=PRODUCER)
        return InputDataset(namespace=self.namespace, name=name, facets={"version": facet})

    def _output(self, name: str, version: str) -> OutputDataset:
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.facet_v2 import dataset_version_dataset as dv

        facet = dv.DatasetVersionDatasetFacet(datasetVersion=version, producer=PRODUCER)
        return OutputDataset(namespace=self.namespace, name=name, facets={"version": facet})

    def _run_facets(self, drive: _Drive, *, nominal: bool = True) -> dict[str, RunFacet]:
        from openlineage.client.facet_v2 import nominal_time_run, processing_engine_run

        facets: dict[str, RunFacet] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=__version__,
                name="lockgate",
                openlineageAdapterVersion=__version__,
                producer=PRODUCER,
            )
        }
        start = _nominal_time(drive.record.params.get("logical_date")) if nominal else None
        if start is not None:
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=start, producer=PRODUCER
            )
        return facets

    def _error(self, message: str | None) -> dict[str, RunFacet]:
        if message is None:
            return {}
        from openlineage.client.facet_v2 import error_message_run

        facet = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", producer=PRODUCER
        )
        return {"errorMessage": facet}

    def _job_facets(self, record: RunRecord, job_type: str) -> dict[str, JobFacet]:
        from openlineage.client.facet_v2 import job_type_job, source_code_location_job

        facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="LOCKGATE", jobType=job_type, producer=PRODUCER
            )
        }
        url = _source_url(record.pipeline_ref)
        if record.git_sha and url:
            facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
                type="git", url=url, version=record.git_sha, producer=PRODUCER
            )
        return facets

    def _emit(
        self,
        event_type: str,
        ol_id: str,
        job: str,
        at: float,
        *,
        run_facets: dict[str, RunFacet],
        job_facets: dict[str, JobFacet],
        inputs: list[InputDataset] | None = None,
        outputs: list[OutputDataset] | None = None,
    ) -> None:
        """Send one event; a transport error is logged, never raised."""
        from openlineage.client.event_v2 import Job, Run, RunEvent
        from openlineage.client.event_v2 import RunState as EventType

        event = RunEvent(
            eventType=EventType(event_type),
            eventTime=datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            run=Run(runId=ol_id, facets=run_facets),
            job=Job(namespace=self.namespace, name=job, facets=job_facets),
            inputs=inputs or [],
            outputs=outputs or [],
            producer=PRODUCER,
        )
        try:
            failpoints.hit("lineage.before_emit", job)
            self.client.emit(event)
        except Exception as exc:
            self.failures += 1
            log = logger.warning if self.failures == 1 else logger.debug
            log("OpenLineage: %s event for %s was not sent: %s", event_type, job, exc)
        else:
            self.sent += 1


def _client(settings: OpenLineageSettings) -> OpenLineageClient:
    """The client with the configured transport (raises ImportError without the extra)."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import Transport

    transport: Transport
    if settings.transport == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        assert settings.path is not None
        settings.path.parent.mkdir(parents=True, exist_ok=True)  # OSError: a ConfigError
        transport = FileTransport(FileConfig(log_file_path=str(settings.path), append=True))
    elif settings.transport == "http":
        from openlineage.client.transport.http import (
            ApiKeyTokenProvider,
            HttpConfig,
            HttpTransport,
            TokenProvider,
        )

        assert settings.url is not None
        key = settings.api_key.reveal() if settings.api_key else None  # SecretNotSetError
        auth = ApiKeyTokenProvider({"apiKey": key}) if key else None
        config = HttpConfig(
            url=settings.url,
            endpoint=settings.endpoint,
            timeout=5.0,
            auth=auth or TokenProvider({}),
            retry=dict(HTTP_RETRY),
        )
        transport = HttpTransport(config)
    else:
        from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport

        console = logging.getLogger("openlineage.client.transport.console")
        if not console.handlers:  # the transport logs each event at INFO: show it on stderr
            console.addHandler(_Stderr())
            console.setLevel(logging.INFO)
            console.propagate = False
        transport = ConsoleTransport(ConsoleConfig())
    return OpenLineageClient(transport=transport)


class _Stderr(logging.Handler):
    """Write each record to whatever `sys.stderr` is when it is written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _label(node_id: str, map_index: int | None) -> str:
    return node_id if map_index is None else f"{node_id}[{map_index}]"


def _source_url(pipeline_ref: str | None) -> str | None:
    """A URI for the pipeline's code: `file:///abs/path.py`, or `python:package.module`."""
    if not pipeline_ref:
        return None
    source = pipeline_ref.rpartition(":")[0]
    if source.endswith(".py") and Path(source).is_absolute():
        return Path(source).as_uri()
    return f"python:{source}" if source else None


def _nominal_time(value: Any) -> str | None:
    """`logical_date` as an ISO 8601 instant (dates are midnight UTC), or None."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            moment = datetime.fromisoformat(str(value))
    except (ValueError, OverflowError, OSError):
        logger.debug("OpenLineage: logical_date %r is not a date; no nominal time", value)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
