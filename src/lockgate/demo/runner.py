"""`lockgate demo`: three examples as one project, run in order, then a summary of what happened.

The story: `nightly_eval` ingests a day of support transcripts and gates on
their groundedness; the new transcripts version fires `index_rebuild`
through its data sensor (the same sensor pass `lockgate server` runs); then
`weekly_finetune` trains a candidate with an injected regression, which the
canary rolls back, and again without it, which the canary promotes.

The examples live in the repository's `examples/` (found next to the
installed package in a checkout, or given with `--examples`); the demo
copies them into a directory of its own with one `lockgate.toml` listing
their pipelines, so the runs share one workspace and the UI shows them all.
A directory is reused only if an earlier demo made it (a marker file says
so); anything else is refused rather than overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.errors import UsageError
from lockgate.model.states import Trigger
from lockgate.service import record as record_service
from lockgate.service.alerts import run_alert_pass
from lockgate.service.catalog import load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.lifecycle import pipeline_for
from lockgate.service.project import Project, parse
from lockgate.service.runs import RunResult, coordinator, read_run, start_run
from lockgate.service.sensors import sensor_pass

#: The examples the demo runs, in order.
EXAMPLES = ("nightly_eval", "index_rebuild", "weekly_finetune")
MARKER = ".lockgate-demo"
# Where-state-lives variables the demo's own project replaces while it runs.
_LOCATIONS = (
    "LOCKGATE_HOME",
    "LOCKGATE_DB_URL",
    "LOCKGATE_ARTIFACT_ROOT",
    "LOCKGATE_LOGS_ROOT",
    "LOCKGATE_RAY_ADDRESS",
)
DEFAULT_DIR = "lockgate-demo"


@dataclass(frozen=True, slots=True)
class Step:
    """One run of the demo.

    Attributes:
        pipeline: the pipeline's name in the demo project.
        title: what the step shows, for the display.
        params: its parameters.
        sensor: started by the data sensor instead of by hand.
    """

    pipeline: str
    title: str
    params: Mapping[str, Any] = field(default_factory=dict)
    sensor: bool = False


def steps(day: str) -> list[Step]:
    """The demo's runs for `day`."""
    return [
        Step(
            "nightly_eval",
            f"ingest the transcripts of {day}, evaluate per cohort, gate on groundedness",
            {"day": day},
        ),
        Step("index_rebuild", "the new transcripts version fires the index rebuild", sensor=True),
        Step(
            "weekly_finetune",
            "a candidate with an injected regression: the canary must roll it back",
            {"regression": True},
        ),
        Step("weekly_finetune", "a good candidate: the canary promotes it", {"regression": False}),
    ]


def find_examples(explicit: str | Path | None = None) -> Path:
    """The examples directory: `explicit`, else the checkout's `examples/`.

    Raises:
        UsageError: not found, or an example is missing from it.
    """
    if explicit is not None:
        root = Path(explicit).expanduser().resolve()
    else:
        root = Path(__file__).resolve().parents[3] / "examples"
    missing = [name for name in EXAMPLES if not (root / name / "pipelines.py").is_file()]
    if missing:
        raise UsageError(
            f"lockgate demo runs the examples of the lockgate repository, but {root} lacks "
            f"{', '.join(missing)}; run it from a checkout (make demo), or pass "
            "--examples PATH/TO/lockgate/examples"
        )
    return root


def prepare(directory: str | Path, examples: Path) -> Project:
    """Copy the examples into `directory` (fresh) with one lockgate.toml; the parsed project.

    Raises:
        UsageError: `directory` exists, is not empty and was not made by a demo.
    """
    target = Path(directory).expanduser().resolve()
    if target.exists() and any(target.iterdir()) and not (target / MARKER).exists():
        raise UsageError(
            f"{target} exists and was not made by lockgate demo; pass --dir with a new or "
            "empty directory (nothing was changed)"
        )
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / MARKER).write_text("made by lockgate demo; the next demo replaces this directory\n")
    for name in EXAMPLES:
        shutil.copytree(
            examples / name,
            target / name,
            ignore=shutil.ignore_patterns(".lockgate", "__pycache__", "*.pyc"),
        )
    listed = ", ".join(f'"{name}/pipelines.py"' for name in EXAMPLES)
    parts = [
        "# Written by lockgate demo: the examples' pipelines in one project, and the\n"
        "# rest of each example's lockgate.toml (gateway, alerts) as it is.\n"
        f'[project]\npipelines = [{listed}]\nhome = ".lockgate"\n'
    ]
    for name in EXAMPLES:
        config = examples / name / "lockgate.toml"
        if config.is_file():
            parts.append(
                f"\n# --- from {name}/lockgate.toml\n" + _without_project(config.read_text())
            )
    (target / "lockgate.toml").write_text("".join(parts))
    return parse(target / "lockgate.toml")


def _without_project(text: str) -> str:
    """A lockgate.toml's text minus its [project] table (the demo writes its own)."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            skipping = header == "[project]"
        if not skipping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def inside(project: Project) -> Iterator[None]:
    """Work in the demo project: its directory and lockgate.toml, not the caller's state.

    Processes the examples start (a gateway, a CLI call) find the demo's
    workspace the way they would find any project's: from the working
    directory and LOCKGATE_CONFIG.
    """
    assert project.path is not None
    saved_cwd, saved_env = Path.cwd(), dict(os.environ)
    for name in _LOCATIONS:
        os.environ.pop(name, None)
    os.environ["LOCKGATE_CONFIG"] = str(project.path)
    os.chdir(project.path.parent)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def open_workspace(project: Project) -> Workspace:
    """The demo's own workspace: the environment's LOCKGATE_* settings do not apply."""
    return Workspace(Settings.from_env({}, project=project), project)


def run_step(workspace: Workspace, step: Step, listener: Any) -> RunResult:
    """Run one step to its end (a sensor step: the sensor pass queues it, this drives it).

    Raises:
        UsageError: the sensor did not queue a run (the example is not wired as expected).
    """
    catalog = load_catalog(workspace.project)
    if not step.sensor:
        entry = catalog.get(step.pipeline)
        bound = entry.pipeline.bind(step.params)
        result = start_run(
            entry.pipeline,
            bound,
            workspace=workspace,
            trigger=Trigger.CLI,
            listener=listener,
            pipeline_ref=entry.ref,
        )
        run_alert_pass(workspace.metadata, workspace.project.alerts)
        return result
    queued = [e for e in sensor_pass(workspace, catalog) if e.created]
    store = workspace.metadata
    mine = [e.run_id for e in queued if store.get_run(e.run_id).pipeline == step.pipeline]
    if not mine:
        raise UsageError(
            f"the data sensor queued no {step.pipeline} run; does the example declare "
            "triggers=[lg.on_new_version(...)] on a version the earlier step made?"
        )
    claimed = store.claim_queued(limits={}, claimer="lockgate-demo", at=time.time(), max_runs=1)
    if [r.id for r in claimed] != mine[:1]:
        raise UsageError(f"expected to claim run {mine[0]}, got {[r.id for r in claimed]}")
    record = claimed[0]
    pipeline = pipeline_for(record, None)
    runner = workspace.executor(None, pipeline=pipeline.name)
    try:
        params = pipeline.params_from_json(record.params)
        records = store.task_runs(record.id)
        coordinator(workspace, runner, listener).drive(pipeline, params, record.id, records)
    finally:
        runner.close()
    run_alert_pass(workspace.metadata, workspace.project.alerts)
    return read_run(workspace, record.id)


def write_records(workspace: Workspace, run_ids: list[str], directory: Path) -> list[Path]:
    """Each run's reliability record as Markdown under `directory`; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for run_id in run_ids:
        document = record_service.build(workspace, run_id)
        path = directory / f"{run_id}.md"
        path.write_text(record_service.to_markdown(document))
        paths.append(path)
    return paths


def summary(workspace: Workspace, run_ids: list[str]) -> dict[str, Any]:
    """What the demo's runs did: status per run, gate verdicts, registry aliases, routes."""
    store = workspace.metadata
    runs, gates, canaries = [], [], []
    models: dict[str, dict[str, Any]] = {}
    for run_id in run_ids:
        document = record_service.build(workspace, run_id)
        run = document["run"]
        runs.append(
            {
                "run_id": run_id,
                "pipeline": run["pipeline"],
                "status": run["status"],
                "trigger": run["trigger"],
                "duration_s": run["duration_s"],
            }
        )
        for gate in document["gates"]:
            gates.append({"run_id": run_id, **gate})
        for canary in document["canary"]:
            canaries.append({"run_id": run_id, **canary})
        for entry in document["registry"]:
            if entry["event"] == "model_registered" and entry.get("name"):
                models.setdefault(entry["name"], {})
    for name in models:
        versions = store.list_versions("model", name)
        production = store.alias_version("model", name, "production")
        models[name] = {
            "versions": len(versions),
            "production": production.version if production else None,
        }
    routes = [
        {"name": r.name, "targets": {t.label: t.weight for t in r.targets}}
        for r in store.list_routes()
    ]
    return {"runs": runs, "gates": gates, "canaries": canaries, "models": models, "routes": routes}
