"""The prompt_optimization example: the best template is promoted once; a non-win moves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import lockgate as lg
from lockgate.model.states import RunState, TaskState
from lockgate.service import record as record_service
from lockgate.service.loader import load_module, load_pipeline

EXAMPLE = Path(__file__).parents[2] / "examples" / "prompt_optimization" / "pipelines.py"
REGISTRY = "answer-prompt"


def test_best_prompt_is_promoted_and_a_candidate_without_margin_leaves_production(
    workspace, monkeypatch
):
    # The thresholds below were measured with MiniLM: never score with the lexical fallback.
    monkeypatch.setenv("LOCKGATE_EVALS_EMBEDDINGS", "embeddings")
    example = load_module(str(EXAMPLE))
    pipeline = load_pipeline(f"{EXAMPLE}:prompt_optimization")
    store = workspace.metadata

    # First run: four templates on one eval set; nothing in production yet.
    first = lg.run(pipeline, workspace=workspace, executor="inline")
    assert first.ok, first.record.error
    table = {c["variant"]: c["metrics"] for c in first.output("choose")["candidates"]}
    assert list(table) == ["quote", "first_sentence", "truncate", "ignore"]
    quality = {variant: metrics["quality"] for variant, metrics in table.items()}
    # The templates really differ (measured: 0.958, 0.950, 0.671, 0.111 on 2026-11-24).
    assert quality["quote"] > quality["first_sentence"] > quality["truncate"] > quality["ignore"]
    assert quality["quote"] >= 0.9 and quality["truncate"] < 0.8 and quality["ignore"] < 0.3
    assert table["ignore"]["groundedness"] < 0.5 and table["ignore"]["task_completion"] == 0.0
    assert first.output().startswith(f"{REGISTRY}@production is now the 'quote' template")

    production = store.alias_version("model", REGISTRY, "production")
    assert production is not None and production.version == 1 and production.gated
    served = workspace.artifacts.get(production.ref, trusted=True, what="production prompt")
    assert served == example.TEMPLATES["quote"]
    assert production.metadata["scores"]["quality"] == pytest.approx(quality["quote"])
    # The registry version is the very prompt version the run stored for "quote".
    prompt = store.version_of("prompt", "answer", production.ref.sha256)
    assert prompt is not None and prompt.metadata == {"variant": "quote"}
    assert len(store.list_versions("prompt", "answer")) == 4

    document = record_service.build(workspace, first.run_id)
    (gate,) = document["gates"]
    assert gate["node"] == "beats_production" and gate["passed"]
    relative = next(c for c in gate["checks"] if c["metric"] == "quality")
    assert relative["expression"] == ">= production + 0.02"
    assert relative["baseline_alias"] == "production" and relative["baseline_version"] is None
    moves = [e for e in document["registry"] if e["event"] == "alias_moved"]
    assert [(m["name"], m["alias"], m["version"], m["previous_version"]) for m in moves] == [
        (REGISTRY, "production", 1, None)
    ]
    winner = next(a for a in document["artifacts"] if a["node"] == "winner")
    assert f"prompt:answer@{prompt.version}" in winner["versions"]
    assert f"model:{REGISTRY}@1" in winner["versions"]
    assert document["verification"]["ok"]

    # Second run: the best remaining candidate is close to production but not 0.02 better.
    second = lg.run(
        pipeline,
        params={"variants": ["first_sentence", "truncate", "ignore"]},
        workspace=workspace,
        executor="inline",
    )
    assert second.status is RunState.GATE_FAILED, second.record.error
    assert second.output("choose")["variant"] == "first_sentence"
    for node in ("register", "promote", "announce"):
        assert second.nodes[node].state is TaskState.SKIPPED
    still = store.alias_version("model", REGISTRY, "production")
    assert still is not None and still.version == 1  # the alias did not move
    assert [v.version for v in store.list_versions("model", REGISTRY)] == [1]  # nothing registered
    assert len(store.alias_events("model", REGISTRY, "production")) == 1

    document = record_service.build(workspace, second.run_id)
    (gate,) = document["gates"]
    assert not gate["passed"]
    relative = next(c for c in gate["checks"] if c["metric"] == "quality")
    assert not relative["passed"]
    assert relative["baseline_version"] == 1
    assert relative["baseline_value"] == pytest.approx(quality["quote"])
    assert relative["threshold"] == pytest.approx(quality["quote"] + 0.02)
    assert relative["value"] == pytest.approx(quality["first_sentence"])
    assert not [
        e for e in document["registry"] if e["event"] in ("model_registered", "alias_moved")
    ]
    # The candidate that lost is still a recorded prompt version, named in the record.
    winner = next(a for a in document["artifacts"] if a["node"] == "winner")
    (candidate,) = winner["versions"]
    assert candidate.startswith("prompt:answer@")
    assert document["run"]["status"] == "gate_failed"
