"""Every error lockgate raises, in one hierarchy.

Messages name the object (pipeline, node, run id, URI), say what was expected
and what was found, and end with the next step. Each class carries the exit
code the CLI uses when it ends a command, so the CLI renders errors in one
place without a lookup table.

    LockgateError
    ├── DefinitionError                 exit 2: fix the pipeline code
    │   ├── InvalidPolicyError          (also ValueError) a bad task/pipeline option
    │   ├── TracingError                a placeholder misused in a pipeline body
    │   ├── GraphError                  the traced graph is invalid
    │   │   └── CycleError
    │   ├── DuplicatePipelineError
    │   └── UnserializableOutputError   a task returned something lockgate cannot store
    ├── UsageError                      exit 2: fix the command line
    │   ├── ParameterError              (also ValueError) unknown, missing or unparsable -p
    │   │   └── SecretUnavailableError  a secret parameter's value was never stored; pass it again
    │   ├── PipelineNotFoundError       PATH:PIPELINE does not resolve
    │   ├── VersionNotFoundError        a dataset/model/prompt version does not exist
    │   └── RunStateError               the run is in a state that does not allow this
    ├── ConfigError                     exit 2
    │   └── SecretNotSetError           an `env:VAR` secret's variable is unset where it is read
    ├── StoreError                      exit 1
    │   ├── MetadataError
    │   │   ├── SchemaVersionError
    │   │   ├── MetadataBusyError
    │   │   ├── RunNotFoundError
    │   │   ├── NodeNotFoundError
    │   │   ├── RunExistsError          this schedule tick, version or message already has a run
    │   │   ├── FencedError             a stale attempt's commit: another coordinator owns the run
    │   │   ├── RouteNotFoundError      no route with that name (exit 2)
    │   │   └── RouteConflictError      the route changed since it was read (retry)
    │   └── ArtifactError
    │       ├── ArtifactNotFoundError
    │       ├── ArtifactCorrupted
    │       ├── InvalidArtifactKey
    │       ├── UntrustedArtifactError
    │       ├── ArtifactStoreFull
    │       └── ArtifactStoreUnavailable  the root's bucket is missing, access denied, unreachable
    ├── ExecutionError                  exit 1: a run did not succeed
    │   ├── TaskFailedError             user code raised; keeps the original traceback text
    │   └── RunFailedError
    ├── ExecutorError                   exit 2: the executor cannot start (Ray missing, unreachable)
    │   └── SharedStoreRequiredError    a remote cluster cannot reach a local-disk artifact store
    ├── EvaluationError                 exit 2: an evaluator cannot score its rows
    ├── GateError                       exit 3: an evaluation gate did not pass
    ├── RegistryError                   exit 2: a registry operation is not allowed
    ├── RouteError                      exit 2: a route change is not allowed
    │   ├── InvalidRouteError           (also ValueError) bad weights, targets or mirror
    │   └── RouteStateError             the route has no earlier state to roll back to
    ├── ServingError                    exit 1: the gateway cannot serve a route's target
    │   ├── ModelLoadError              a target cannot be loaded (version, value, answerer)
    │   └── PredictionError             a target raised on a request's inputs
    └── ApiError                        exit 1: `lg.Client` got an error from a server
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ArtifactCorrupted",
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactStoreFull",
    "ArtifactStoreUnavailable",
    "ConfigError",
    "CycleError",
    "DefinitionError",
    "DuplicatePipelineError",
    "EvaluationError",
    "ExecutionError",
    "ExecutorError",
    "FencedError",
    "GateError",
    "GraphError",
    "InvalidArtifactKey",
    "InvalidPolicyError",
    "InvalidRouteError",
    "LockgateError",
    "LockgateWarning",
    "MetadataBusyError",
    "MetadataError",
    "ModelLoadError",
    "NodeNotFoundError",
    "ParameterError",
    "PipelineNotFoundError",
    "PredictionError",
    "RegistryError",
    "RouteConflictError",
    "RouteError",
    "RouteNotFoundError",
    "RouteStateError",
    "RunExistsError",
    "RunFailedError",
    "RunNotFoundError",
    "RunStateError",
    "SchemaVersionError",
    "SecretNotSetError",
    "SecretUnavailableError",
    "ServingError",
    "SharedStoreRequiredError",
    "StoreError",
    "TaskFailedError",
    "TracingError",
    "UnserializableOutputError",
    "UntrustedArtifactError",
    "UsageError",
    "VersionNotFoundError",
]


class LockgateError(Exception):
    """Root of every error lockgate raises on purpose."""

    exit_code: int = 1


class LockgateWarning(UserWarning):
    """Something works, but not the way the user probably expects."""


# --- definitions -----------------------------------------------------------


class DefinitionError(LockgateError):
    """A task or pipeline definition is invalid; fix the code."""

    exit_code = 2


class InvalidPolicyError(DefinitionError, ValueError):
    """A task or pipeline option has a value it cannot take."""

    @classmethod
    def for_field(cls, owner: str, field: str, value: object, expected: str) -> InvalidPolicyError:
        """Build the message for one bad option of one task or pipeline."""
        return cls(f"{owner}: {field}={value!r} is invalid; expected {expected}.")


class TracingError(DefinitionError):
    """A placeholder was used where a real value is needed while tracing."""


class GraphError(DefinitionError):
    """The traced graph is not a valid DAG."""


class CycleError(GraphError):
    """Ordering or data edges form a cycle."""


class DuplicatePipelineError(DefinitionError):
    """Two pipelines in one module share a name."""


class UnserializableOutputError(DefinitionError):
    """A task returned a value that no serializer can store."""


# --- usage -----------------------------------------------------------------


class UsageError(LockgateError):
    """The command line or call is wrong; fix the invocation."""

    exit_code = 2


class ParameterError(UsageError, ValueError):
    """A pipeline parameter is unknown, missing, or does not parse to its type."""


class SecretUnavailableError(ParameterError):
    """A secret parameter's value is needed again but was never stored (resume, server launch).

    lockgate records `<secret>` in place of a secret given as a literal value,
    so a run that is resumed or launched later needs the value passed again,
    or an `env:VAR` reference from the start.
    """


class PipelineNotFoundError(UsageError):
    """A `PATH:PIPELINE` reference does not resolve to a pipeline."""


class RunStateError(UsageError):
    """The run is in a state that does not allow the operation (resume a succeeded run...)."""


class VersionNotFoundError(UsageError):
    """A named dataset, model or prompt version does not exist."""


class ConfigError(LockgateError):
    """Settings (environment, config file) are invalid."""

    exit_code = 2


class SecretNotSetError(ConfigError):
    """An `env:VAR` secret names an environment variable that is unset or empty where it is read."""


# --- stores ----------------------------------------------------------------


class StoreError(LockgateError):
    """A metadata or artifact store could not do what was asked."""


class MetadataError(StoreError):
    """The metadata database failed or holds something unexpected."""


class SchemaVersionError(MetadataError):
    """The database schema is older or newer than this lockgate."""


class MetadataBusyError(MetadataError):
    """The database stayed locked by another writer for too long."""


class RunNotFoundError(MetadataError):
    """No run with the given id exists."""

    exit_code = 2


class RunExistsError(MetadataError):
    """The trigger (schedule tick, new version, message) already started a run."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class NodeNotFoundError(MetadataError):
    """The run has no node with the given id."""

    exit_code = 2


class FencedError(MetadataError):
    """A commit named an attempt that is no longer current: another coordinator took over."""


class RouteNotFoundError(MetadataError):
    """No route with the given name exists."""

    exit_code = 2


class RouteConflictError(MetadataError):
    """A route change expected a version the route no longer has: someone changed it first."""


class ArtifactError(StoreError):
    """An artifact could not be written, found, trusted or read."""


class ArtifactNotFoundError(ArtifactError):
    """No blob exists for the given hash."""


class ArtifactCorrupted(ArtifactError):
    """A blob's content does not match its hash."""


class InvalidArtifactKey(ArtifactError, ValueError):
    """A key or URI could escape the store or is malformed."""

    exit_code = 2


class UntrustedArtifactError(ArtifactError):
    """Loading would unpickle bytes this installation did not produce."""


class ArtifactStoreFull(ArtifactError):
    """The artifact store ran out of space while writing."""


class ArtifactStoreUnavailable(ArtifactError):
    """The artifact root cannot be used: its bucket is missing, access is denied, or
    its server cannot be reached. Raised instead of the backend's own exception."""


# --- execution -------------------------------------------------------------


class ExecutionError(LockgateError):
    """A run or task did not succeed."""


class TaskFailedError(ExecutionError):
    """User code raised inside a task; `remote_traceback` keeps the original."""

    def __init__(self, message: str, *, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


class RunFailedError(ExecutionError):
    """A run ended in a state other than succeeded."""


class ExecutorError(LockgateError):
    """The executor cannot start: its library is missing or its cluster is unreachable."""

    exit_code = 2


class SharedStoreRequiredError(ExecutorError):
    """Workers on other machines cannot reach an artifact store on this machine's disk."""


# --- gates and registry ----------------------------------------------------


class GateError(LockgateError):
    """A gate's checks did not pass, or could not be evaluated (fails closed)."""

    exit_code = 3


class RegistryError(LockgateError):
    """A registry operation is not allowed: unknown model or version, ungated promotion."""

    exit_code = 2


class RouteError(LockgateError):
    """A route change is not allowed: bad weights, unknown targets, nothing to roll back."""

    exit_code = 2


class InvalidRouteError(RouteError, ValueError):
    """Route targets or weights are invalid (negative, not summing to 100, not registered)."""


class RouteStateError(RouteError):
    """The route's state does not allow the change (no earlier state to roll back to)."""


class ServingError(LockgateError):
    """The gateway cannot serve a request with a route's target."""


class ModelLoadError(ServingError):
    """A route target cannot be loaded: no such version, an unservable value, no answerer."""


class PredictionError(ServingError):
    """A target raised on a request. `status` is 422 when the inputs were refused, else 500."""

    def __init__(self, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class EvaluationError(LockgateError, ValueError):
    """An evaluator is misconfigured, or cannot score the rows it was given.

    The message names the evaluator, the column or value at fault and the fix.
    """

    exit_code = 2


class ApiError(LockgateError):
    """A `lockgate server` rejected a request or could not be reached.

    Attributes:
        status: the HTTP status (None when the server was unreachable).
    """

    status: int | None = None
