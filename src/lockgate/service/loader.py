"""Find a pipeline from `PATH:PIPELINE` (a .py file) or `MODULE:PIPELINE`.

The file's directory goes on sys.path so its sibling imports work. The
pipeline is traced on load, so definition errors surface before a run is
created.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from lockgate.errors import (
    DefinitionError,
    DuplicatePipelineError,
    LockgateError,
    PipelineNotFoundError,
)
from lockgate.model.pipeline import Pipeline, forget_module

# Set on modules this loader imported from a file path: they are not importable
# by name elsewhere, so runs record their path and workers pickle them by value.
LOADED_BY_PATH = "__lockgate_loaded_by_path__"


def split_ref(ref: str) -> tuple[str, str]:
    """Split `PATH:PIPELINE` into its two parts.

    Raises:
        PipelineNotFoundError: the reference has no `:` or an empty part.
    """
    source, sep, name = ref.rpartition(":")
    if not sep or not source or not name:
        raise PipelineNotFoundError(
            f"{ref!r} is not a pipeline reference; expected PATH:PIPELINE, for example "
            "pipelines.py:nightly or my_package.pipelines:nightly"
        )
    return source, name


def load_module(source: str) -> ModuleType:
    """Import a .py file by path, or a module by dotted name."""
    if source.endswith(".py") or "/" in source or Path(source).exists():
        return _load_file(Path(source))
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        raise PipelineNotFoundError(
            f"cannot import module {source!r} ({exc}); give a path to a .py file "
            "(pipelines.py:NAME) or a module importable from the current directory"
        ) from None


def pipelines_in(module: ModuleType) -> dict[str, Pipeline]:
    """Every pipeline defined in `module`, by pipeline name.

    Raises:
        DuplicatePipelineError: two different pipelines share a name.
    """
    found: dict[str, Pipeline] = {}
    for value in vars(module).values():
        if isinstance(value, Pipeline):
            other = found.get(value.name)
            if other is not None and other is not value:
                raise DuplicatePipelineError(
                    f"module {module.__name__!r} defines two pipelines named {value.name!r}; "
                    "give one of them another name with @lg.pipeline(name=...)."
                )
            found[value.name] = value
    return found


def load_pipeline(ref: str) -> Pipeline:
    """Load and trace the pipeline named by `ref`.

    Raises:
        PipelineNotFoundError: the file, module or pipeline does not exist.
        DefinitionError: importing the module or tracing the pipeline failed.
    """
    source, name = split_ref(ref)
    module = load_module(source)
    found = pipelines_in(module)
    chosen = found.get(name)
    if chosen is None:
        candidate = getattr(module, name, None)
        if isinstance(candidate, Pipeline):
            chosen = candidate
    if chosen is None:
        names = sorted(found)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(names) if names else "none (decorate a function with @lg.pipeline)"
        raise PipelineNotFoundError(
            f"{source} has no pipeline {name!r}.{hint} Pipelines defined there: {listed}."
        )
    _ = chosen.graph  # trace now: definition errors before any run exists
    return chosen


def _load_file(path: Path) -> ModuleType:
    path = path.expanduser()
    if not path.is_file():
        raise PipelineNotFoundError(
            f"no such file: {path} (resolved from {Path.cwd()}); check the path before ':'"
        )
    path = path.resolve()
    name = path.stem if path.stem.isidentifier() else "pipelines"
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) != str(path):
        name = f"{name}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineNotFoundError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    setattr(module, LOADED_BY_PATH, True)
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    forget_module(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except LockgateError:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if f.filename == str(path)] or frames
        line = f" (line {user[-1].lineno}: {user[-1].line})" if user else ""
        raise DefinitionError(
            f"importing {path} failed: {type(exc).__name__}: {exc}{line}. Fix the module, "
            "then run the command again."
        ) from exc
    return module
