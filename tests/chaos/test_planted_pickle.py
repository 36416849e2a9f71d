"""Bad input: a pickle planted in the artifact store by someone else never runs.

An attacker who can write to the artifact directory (but not the database)
plants a hostile pickle whose payload creates a marker directory: once over
the blob of a real pickled output, once as a new blob named by its own hash.
Every way lockgate reads artifacts is tried: a resumed run whose task takes
the tampered input, `lockgate artifacts get`, `lockgate artifacts verify`,
`lg.RunResult.output()`, the store's own `get` without trust. None may
create the marker, and each refusal must say what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
from checker import check_run
from installation import Installation

from lockgate.service.compose import Workspace

PIPELINE = """
import os
import pathlib

import lockgate as lg


class Model:
    def __init__(self, n):
        self.weights = bytes(range(256)) * n  # over the inline limit: a blob file


@lg.task
def fit(n: int) -> Model:
    return Model(n)


@lg.task
def use(model: Model) -> int:
    if pathlib.Path("hold").exists():
        raise RuntimeError("held back so the run can be resumed later")
    return len(model.weights)


@lg.pipeline
def planted(n: int = 200):
    return use(fit(n))
"""


class Payload:
    """Unpickling this creates the marker directory: the attack's proof of execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.marker,))


def blob_path(site: Installation, sha256: str) -> Path:
    return site.root / "home" / "artifacts" / "sha256" / sha256[:2] / sha256


@pytest.mark.scenario("bad input: a pickle planted in the artifact store")
@pytest.mark.timeout(600)
def test_a_planted_pickle_is_never_unpickled(chaos, tmp_path: Path):
    site = Installation(tmp_path)
    (tmp_path / "flow.py").write_text(PIPELINE)
    (tmp_path / "hold").touch()
    first = site.run("run", "flow.py:planted", "--executor", "process", "--json")
    run_id = json.loads(first.stdout.strip().splitlines()[-1])["run_id"]
    assert first.returncode == 1, first.stderr
    marker = tmp_path / "pwned"
    hostile = pickle.dumps(Payload(marker))
    pickle.loads(hostile)  # the control: this payload does run when unpickled
    assert marker.is_dir()
    marker.rmdir()
    workspace = Workspace(site.settings)
    try:
        (fit,) = [t for t in workspace.metadata.task_runs(run_id) if t.node_id == "fit"]
        assert fit.output is not None
        model_sha = fit.output.sha256
    finally:
        workspace.close()
    target = blob_path(site, model_sha)
    assert target.exists(), "fit's output should be a pickle blob on disk"
    target.chmod(0o644)
    target.write_bytes(hostile)  # over a real pickled output
    stray_sha = hashlib.sha256(hostile).hexdigest()
    stray = blob_path(site, stray_sha)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(hostile)  # a new blob, named by its own hash
    (tmp_path / "hold").unlink()

    def attempt(what: str, check) -> None:
        problems = [f"{what}: {p}" for p in check()]
        if marker.exists():
            problems.append(f"{what}: the planted pickle ran")
            marker.rmdir()
        chaos.record(problems)

    def resume() -> list[str]:
        done = site.run("resume", run_id, "--json")
        out = done.stdout + done.stderr
        if done.returncode == 0:
            return ["the resumed run succeeded on a tampered input"]
        expected = f"lockgate://artifacts/sha256/{model_sha}"
        return [] if "ArtifactCorrupted" in out and expected in out else [out[-600:]]

    def get_tampered() -> list[str]:
        done = site.run("artifacts", "get", f"sha256:{model_sha}")
        return [] if done.returncode != 0 and "sha256 mismatch" in done.stderr else [done.stderr]

    def get_stray() -> list[str]:
        # Not recorded by this installation: lockgate has no such artifact.
        done = site.run("artifacts", "get", f"sha256:{stray_sha}")
        return [] if done.returncode != 0 and stray_sha[:12] in done.stderr else [done.stderr]

    def verify() -> list[str]:
        done = site.run("artifacts", "verify", "--json")
        report = json.loads(done.stdout)
        named = json.dumps(report["problems"])
        return [] if done.returncode == 1 and model_sha in named else [done.stdout[-600:]]

    def store_get(trusted: bool) -> list[str]:
        import lockgate as lg

        workspace = Workspace(site.settings)
        try:
            record = workspace.metadata.get_artifact(model_sha)
            assert record is not None
            try:
                workspace.artifacts.get(record.ref, trusted=trusted)
            except (lg.errors.UntrustedArtifactError, lg.errors.ArtifactCorrupted) as exc:
                expected = "sha256 mismatch" if trusted else "refusing to unpickle"
                return [] if expected in str(exc) else [f"unclear refusal: {exc}"]
            return ["the store decoded the planted pickle"]
        finally:
            workspace.close()

    for what, check in [
        ("resume a run whose task takes the tampered pickle", resume),
        ("lockgate artifacts get (tampered)", get_tampered),
        ("lockgate artifacts get (stray blob)", get_stray),
        ("lockgate artifacts verify", verify),
        ("the store's get, untrusted", lambda: store_get(False)),
        # Even a caller that trusts this installation's refs gets the hash check first.
        ("the store's get, trusted", lambda: store_get(True)),
    ]:
        attempt(what, check)
    chaos.check()
    verdict = check_run(site.settings, run_id, status="failed")
    assert all(model_sha[:12] in p or "corrupt" in p for p in verdict.problems), verdict.problems
