"""Loading a route's target from the registry and calling it on a request's inputs.

A target is a registry model version, `model:NAME@VERSION`. Its value is read
from the artifact store with `trusted=True`: model versions are artifacts
this installation produced (a run registered them), which is what trusted
decoding is for. Request data is never unpickled: it arrives as JSON and is
passed to the model as JSON values (lists, dicts, strings, numbers).

What a value may be, checked in this order:

1. an object with `predict` or `predict_proba` (scikit-learn and alike):
   `predict(inputs)` unless the request asks for `"method": "predict_proba"`;
2. a `str`: a prompt, served by the `[gateway] answerer`. The text is the
   prompt itself, or a reference `prompt:NAME@VERSION` to a registered
   prompt version (read as JSON text). The answerer is called as
   `answer(prompt, inputs, context=context)`;
3. any other callable: `fn(inputs)`.

Outputs are turned into JSON (numpy arrays and scalars through `tolist()`);
an output that is not JSON data is a prediction error. An exception a target
raises on its inputs (ValueError, TypeError, KeyError, IndexError) is
answered 422 (the inputs were refused); any other is 500.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockgate.errors import ConfigError, LockgateError, ModelLoadError, PredictionError
from lockgate.model.versions import parse_version_ref
from lockgate.ports.routes import RouteTarget
from lockgate.service.compose import Workspace

#: What a model raising one of these on a request's inputs most likely means: bad inputs.
INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
METHODS = ("predict", "predict_proba")

Answerer = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Served:
    """A loaded target, ready to answer requests (thread-safe if its model is).

    Attributes:
        label: `model:NAME@VERSION`.
        kind: "estimator", "prompt" or "callable".
        value: the loaded model object, the prompt text, or the callable.
    """

    label: str
    kind: str
    value: Any
    answerer: Answerer | None = None

    def answer(self, inputs: Any, context: Any = None, method: str | None = None) -> Any:
        """The target's JSON output for `inputs`.

        Raises:
            PredictionError: the target raised (status 422 for input errors, else 500),
                the method does not fit the target, or the output is not JSON data.
        """
        if method is not None and self.kind != "estimator":
            raise PredictionError(
                f"{self.label} is a {self.kind}, which has no method {method!r}; "
                "leave `method` out of the request",
                status=422,
            )
        try:
            if self.kind == "estimator":
                output = getattr(self.value, self._method(method))(inputs)
            elif self.kind == "prompt":
                assert self.answerer is not None  # checked when loaded
                output = self.answerer(self.value, inputs, context=context)
            else:
                output = self.value(inputs)
        except PredictionError:
            raise
        except INPUT_ERRORS as exc:
            raise PredictionError(
                f"{self.label} refused the inputs: {type(exc).__name__}: {exc}", status=422
            ) from exc
        except Exception as exc:
            raise PredictionError(f"{self.label} failed: {type(exc).__name__}: {exc}") from exc
        return jsonable(output, self.label)

    def _method(self, method: str | None) -> str:
        if method is None:
            return "predict" if hasattr(self.value, "predict") else "predict_proba"
        if method not in METHODS or not hasattr(self.value, method):
            have = [m for m in METHODS if hasattr(self.value, m)]
            raise PredictionError(
                f"{self.label} has no method {method!r}; it has {', '.join(have)}", status=422
            )
        return method


def jsonable(output: Any, label: str) -> Any:
    """`output` as JSON data (numpy through `tolist()`).

    Raises:
        PredictionError: the output is not JSON data, or holds NaN or infinity.
    """
    if hasattr(output, "tolist") and callable(output.tolist):
        output = output.tolist()
    elif isinstance(output, tuple):
        output = list(output)
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PredictionError(
            f"{label} returned {type(output).__name__}, which is not JSON data ({exc}); "
            "return lists, dicts, str, finite numbers, bool or None"
        ) from None
    return output


def load_answerer(spec: str | None) -> Answerer | None:
    """The `[gateway] answerer` function, imported from `module:function` (None: none set).

    Raises:
        ConfigError: the module or function cannot be imported, or is not callable.
    """
    if spec is None:
        return None
    module_name, _, name = spec.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in name.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"[gateway] answerer = {spec!r} cannot be imported ({exc}); it must name a "
            "function in a module on the gateway's import path"
        ) from None
    if not callable(value):
        raise ConfigError(f"[gateway] answerer = {spec!r} is not callable")
    answerer: Answerer = value
    return answerer


def load_target(workspace: Workspace, target: RouteTarget, answerer: Answerer | None) -> Served:
    """Read `target`'s model version and make it servable.

    Raises:
        ModelLoadError: no such version, its artifact cannot be read, the value
            cannot be served, or it is a prompt and no answerer is configured.
    """
    label = target.label
    record = workspace.metadata.resolve_version("model", target.model, target.version)
    if record is None:
        raise ModelLoadError(
            f"{label} is not a registered model version; `lockgate models list` shows them, "
            "and `lockgate routes set` points the route at one"
        )
    try:
        value = workspace.artifacts.get(record.ref, trusted=True, what=f"model version {label}")
    except LockgateError as exc:
        raise ModelLoadError(f"{label}: cannot read its artifact: {exc}") from exc
    return adapt(workspace, label, value, answerer)


def adapt(workspace: Workspace, label: str, value: Any, answerer: Answerer | None) -> Served:
    """Wrap a loaded value per the module docstring's order.

    Raises:
        ModelLoadError: the value is none of the servable kinds, or a prompt without answerer.
    """
    if hasattr(value, "predict") or hasattr(value, "predict_proba"):
        return Served(label, "estimator", value)
    if isinstance(value, str):
        if answerer is None:
            raise ModelLoadError(
                f"{label} is a prompt; serving it needs an answerer: set [gateway] answerer = "
                "'module:function' in lockgate.toml (called as answer(prompt, inputs, context=...))"
            )
        return Served(label, "prompt", _prompt_text(workspace, label, value), answerer)
    if callable(value):
        return Served(label, "callable", value)
    raise ModelLoadError(
        f"{label} holds a {type(value).__name__}, which the gateway cannot serve: register an "
        "object with predict/predict_proba, a callable, or a prompt (str)"
    )


def _prompt_text(workspace: Workspace, label: str, value: str) -> str:
    if not value.startswith("prompt:") or any(c.isspace() for c in value):
        return value
    try:
        ref = parse_version_ref(value)
    except LockgateError:
        return value  # prompt text that happens to start with "prompt:"
    record = workspace.metadata.resolve_version("prompt", ref.name, ref.version)
    if record is None:
        raise ModelLoadError(
            f"{label} refers to {value}, which is not a registered prompt version; "
            "`lockgate prompts list` shows them"
        )
    try:
        text = workspace.artifacts.get(record.ref, what=f"prompt {record.label}")
    except LockgateError as exc:
        raise ModelLoadError(f"{label}: cannot read {record.label}: {exc}") from exc
    if not isinstance(text, str):
        raise ModelLoadError(f"{label}: {record.label} does not hold prompt text")
    return text
