"""OpenLineage fixtures: a lockgate.toml that writes NDJSON, and a checker for what was written.

Every event read back is validated against the official schema, vendored
with its license in `tests/lineage/spec/openlineage/` (a copy of
`../shared/spec/openlineage/`, draft 2020-12): the event against
OpenLineage.json, and each facet against its own facet schema, resolved by
`$id` from the local folder (never the network). `check_i7` asserts
RELIABILITY.md's I7 on a whole file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Vendored, so a clean clone anywhere validates against the same schemas.
SPEC = Path(__file__).resolve().parent / "spec" / "openlineage"
TERMINAL = {"COMPLETE", "FAIL", "ABORT"}

# jsonschema checks "uuid" itself; "date-time" and "uri" need optional packages.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    moment = datetime.fromisoformat(value)
    return "T" in value.upper() and moment.tzinfo is not None


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


FACET_GROUPS = ("facets", "inputFacets", "outputFacets")


class Schemas:
    """The official OpenLineage schemas, from the vendored copy only."""

    def __init__(self, root: Path) -> None:
        if not (root / "OpenLineage.json").is_file():
            pytest.fail(f"the vendored OpenLineage schema is missing: {root}")
        resources = []
        for path in [root / "OpenLineage.json", *sorted((root / "facets").glob("*.json"))]:
            contents = json.loads(path.read_text(encoding="utf-8"))
            resources.append((contents["$id"], DRAFT202012.create_resource(contents)))
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.event = self._validator(json.loads((root / "OpenLineage.json").read_text()))

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=self.registry, format_checker=FORMATS)

    def validate(self, event: dict[str, Any]) -> None:
        """Validate the event and every facet in it; raise on the first error."""
        self.event.validate(event)
        for owner in (event["run"], event["job"], *event["inputs"], *event["outputs"]):
            for group in FACET_GROUPS:
                for key, facet in (owner.get(group) or {}).items():
                    url = facet["_schemaURL"]
                    document = url.partition("#")[0]
                    resource: Resource[Any] = self.registry.get_or_retrieve(document).value
                    assert key in resource.contents["properties"], (key, url)
                    self._validator({"$ref": document}).validate({key: facet})


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    """The vendored schemas, loaded once."""
    return Schemas(SPEC)


class Lineage:
    """The NDJSON file the `file` transport writes, read back and validated."""

    def __init__(self, path: Path, schemas: Schemas) -> None:
        self.path = path
        self.schemas = schemas

    def events(self) -> list[dict[str, Any]]:
        """Every event so far, each one validated."""
        if not self.path.exists():
            return []
        events = [json.loads(line) for line in self.path.read_text().splitlines()]
        for event in events:
            self.schemas.validate(event)
        return events

    def of(self, job: str) -> list[dict[str, Any]]:
        """Events of one job (`pipeline` or `pipeline.node`), in order."""
        return [e for e in self.events() if e["job"]["name"] == job]

    def types(self, job: str) -> list[str]:
        """Event types of one job, in order."""
        return [e["eventType"] for e in self.of(job)]

    def check_i7(self) -> dict[str, list[dict[str, Any]]]:
        """Assert I7 for every OpenLineage run; return the events grouped by run id."""
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.events():
            runs[event["run"]["runId"]].append(event)
        for run_id, events in runs.items():
            types = [e["eventType"] for e in events]
            assert types[0] == "START", (run_id, events[0]["job"]["name"], types)
            assert types.count("START") == 1, (run_id, types)
            assert sum(t in TERMINAL for t in types) == 1, (run_id, types)
            assert types[-1] in TERMINAL, (run_id, types)
            assert len({e["job"]["name"] for e in events}) == 1
            parent = events[0]["run"]["facets"].get("parent")
            if parent is not None:  # a task run: its parent is a drive that was reported
                assert parent["run"]["runId"] in runs
                assert runs[parent["run"]["runId"]][0]["job"]["name"] == parent["job"]["name"]
        return runs


@pytest.fixture
def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Write a lockgate.toml with the given text and point LOCKGATE_CONFIG at it."""

    def write(text: str) -> Path:
        config = tmp_path / "lockgate.toml"
        config.write_text(text, encoding="utf-8")
        monkeypatch.setenv("LOCKGATE_CONFIG", str(config))
        return config

    return write


@pytest.fixture
def lineage(tmp_path: Path, configure: Callable[[str], Path], schemas: Schemas) -> Lineage:
    """`[openlineage]` with the file transport, writing tmp_path/lineage.ndjson."""
    configure('[openlineage]\ntransport = "file"\npath = "lineage.ndjson"\n')
    return Lineage(tmp_path / "lineage.ndjson", schemas)
