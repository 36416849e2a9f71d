"""The quickstart example (what `make demo` runs) works end to end, gate and registry included."""

from __future__ import annotations

from pathlib import Path

import lockgate as lg
from lockgate.service import record as record_service
from lockgate.service.loader import load_pipeline

EXAMPLE = Path(__file__).parents[2] / "examples" / "quickstart" / "pipelines.py"


def test_quickstart_trains_gates_registers_and_promotes(workspace):
    nightly = load_pipeline(f"{EXAMPLE}:nightly")
    result = lg.run(nightly, params={"day": "2026-11-24"}, workspace=workspace, executor="inline")
    assert result.ok, result.record.error
    assert result.output().startswith("nightly model for 2026-11-24: accuracy 0.9")
    production = workspace.metadata.alias_version("model", "breast-cancer-clf", "production")
    assert production is not None and production.gated
    assert production.metadata["scores"]["roc_auc"] > 0.95
    (dataset,) = workspace.metadata.list_versions("dataset", "breast-cancer")
    assert dataset.metadata == {"day": "2026-11-24"}
    document = record_service.build(workspace, result.run_id)
    assert document["gates"][0]["passed"] and document["verification"]["ok"]
    assert set(document["scores"]["evaluate"]["metrics"]) == {"accuracy", "roc_auc"}
