"""The public surface is pinned: changing it must be a deliberate edit of this list."""

from __future__ import annotations

import subprocess
import sys

import lockgate

PUBLIC = [
    "ArtifactRef",
    "Dataset",
    "Model",
    "Prompt",
    "VersionRef",
    "AttemptState",
    "CachePolicy",
    "Client",
    "Graph",
    "Node",
    "NodeResult",
    "Pipeline",
    "RetryPolicy",
    "RunResult",
    "RunState",
    "Secret",
    "Settings",
    "Task",
    "TaskContext",
    "TaskState",
    "Workspace",
    "__version__",
    "approval",
    "canary",
    "cancel",
    "current",
    "errors",
    "evaluate",
    "gate",
    "on_message",
    "on_new_version",
    "pipeline",
    "promote",
    "record",
    "register",
    "resume",
    "run",
    "stats",
    "task",
]


def test_all_is_pinned():
    assert sorted(lockgate.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(lockgate, name), name


def test_public_callables_have_docstrings():
    for name in PUBLIC:
        value = getattr(lockgate, name)
        if callable(value):
            assert value.__doc__, f"lockgate.{name} has no docstring"


def test_errors_form_one_hierarchy():
    from lockgate import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if name == "LockgateWarning":
            assert issubclass(cls, UserWarning)
        else:
            assert issubclass(cls, errors.LockgateError), name
            assert cls.__doc__


def test_import_pulls_in_no_heavy_dependency():
    code = (
        "import sys, lockgate; "
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'click', 'rich', 'fsspec', 'numpy', "
        "'cloudpickle') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
