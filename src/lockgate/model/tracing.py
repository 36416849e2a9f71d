"""Tracing: running a pipeline body once with placeholders to record its graph.

While a pipeline body runs, a `GraphBuilder` sits in a context variable. Task
calls see it, record a node and return a `Placeholder`. Placeholders refuse
every operation that would need the real value (truth tests, iteration,
len(), arithmetic, attribute access) with an error that explains what to do.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NoReturn

from lockgate.errors import GraphError, TracingError
from lockgate.model.graph import Graph, Node
from lockgate.model.refs import NodeRef, ParamRef, check_literal
from lockgate.model.versions import VersionRef

if TYPE_CHECKING:
    from lockgate.model.task import Task

_BUILDER: ContextVar[GraphBuilder | None] = ContextVar("lockgate_graph_builder", default=None)


def active_builder() -> GraphBuilder | None:
    """The builder of the pipeline being traced in this context, if any."""
    return _BUILDER.get()


class Placeholder:
    """Stands for a value that exists only when the pipeline runs.

    Returned by task calls inside a pipeline body (the task's output) and
    given to the body for each pipeline parameter. Pass it to other tasks; do
    not compute with it.
    """

    __slots__ = ("_builder", "_ref")

    def __init__(self, builder: GraphBuilder, ref: NodeRef | ParamRef) -> None:
        self._builder = builder
        self._ref = ref

    @property
    def ref(self) -> NodeRef | ParamRef:
        """What this placeholder stands for."""
        return self._ref

    def after(self, *nodes: Placeholder) -> Placeholder:
        """Make this node wait for `nodes` to finish, without passing data."""
        if not isinstance(self._ref, NodeRef):
            raise TracingError(
                f"pipeline {self._builder.pipeline!r}: .after() applies to task outputs, "
                f"not to the parameter {self._ref.name!r}"
            )
        self._builder.add_after(self._ref.node, nodes)
        return self

    def __repr__(self) -> str:
        if isinstance(self._ref, NodeRef):
            return f"<output of node {self._ref.node!r}>"
        return f"<parameter {self._ref.name!r}>"

    def _refuse(self, operation: str, advice: str) -> NoReturn:
        what = (
            f"the output of node {self._ref.node!r}"
            if isinstance(self._ref, NodeRef)
            else f"parameter {self._ref.name!r}"
        )
        raise TracingError(
            f"pipeline {self._builder.pipeline!r} uses {what} in {operation} while the "
            "pipeline is traced. A pipeline body runs once, before any task, to record the "
            f"graph, so values do not exist yet. {advice}"
        )

    def __bool__(self) -> bool:
        self._refuse(
            "Python control flow (if/while/and/or/bool())",
            "Move the decision into a task that receives the value and branches there.",
        )

    def __iter__(self) -> NoReturn:
        self._refuse(
            "a for loop or unpacking",
            "To run a task once per item, use task.map(items); to pass the items on, "
            "give the placeholder to a task.",
        )

    def __len__(self) -> int:
        self._refuse("len()", "Compute the length inside a task.")

    def __contains__(self, item: object) -> bool:
        self._refuse("an 'in' test", "Do the test inside a task.")

    def __getitem__(self, key: object) -> NoReturn:
        self._refuse("indexing", "Index the value inside the task that consumes it.")

    def __index__(self) -> int:
        self._refuse("an integer context", "Use the value inside a task.")

    def __int__(self) -> int:
        self._refuse("int()", "Convert the value inside a task.")

    def __float__(self) -> float:
        self._refuse("float()", "Convert the value inside a task.")

    def __format__(self, spec: str) -> str:
        self._refuse("string formatting", "Format the value inside a task.")

    def __str__(self) -> str:
        # str() would otherwise fall back to repr() and bake "<output of node ...>"
        # into the graph as a constant string.
        self._refuse("str()", "Convert or format the value inside a task.")

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse(f"attribute access (.{name})", "Use the value inside a task.")

    def _arith(self, *_: object) -> NoReturn:
        self._refuse("arithmetic or comparison", "Compute with the value inside a task.")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arith
    __truediv__ = __rtruediv__ = __floordiv__ = __mod__ = __pow__ = _arith
    __lt__ = __le__ = __gt__ = __ge__ = _arith
    __neg__ = __abs__ = _arith

    def __eq__(self, other: object) -> bool:
        self._arith()

    def __ne__(self, other: object) -> bool:
        self._arith()

    __hash__ = object.__hash__


class GraphBuilder:
    """Collects nodes while one pipeline body is traced."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self._nodes: dict[str, dict[str, Any]] = {}
        self._calls: dict[str, int] = {}
        self._tasks: dict[str, Task] = {}  # task name -> the task first called by that name

    def __enter__(self) -> GraphBuilder:
        if _BUILDER.get() is not None:
            raise TracingError(
                f"pipeline {self.pipeline!r} was called inside another pipeline body; "
                "call its tasks directly instead of nesting pipelines."
            )
        self._token = _BUILDER.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _BUILDER.reset(self._token)

    def param(self, name: str) -> Placeholder:
        """The placeholder the body receives for parameter `name`."""
        return Placeholder(self, ParamRef(name))

    def add_call(
        self,
        task: Task,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        mapped: bool = False,
        after: Iterable[object] = (),
    ) -> Placeholder:
        """Record one call of `task` and return the placeholder of its output."""
        first = self._tasks.setdefault(task.name, task)
        # lockgate's own steps (lg.evaluate's `evaluate`) may share a name with a user's
        # task, as they always could: ids stay distinct (`evaluate_2`) and neither
        # side can rename the other.
        if (
            first is not task
            and first.version != task.version
            and not (_builtin(first) or _builtin(task))
        ):
            raise GraphError(
                f"task name {task.name!r} is defined twice in pipeline {self.pipeline!r} "
                f"(at {_where_defined(first)} and {_where_defined(task)}); node ids, logs and "
                "cache history go by task name: give one of them another name with "
                "@lg.task(name=...)."
            )
        count = self._calls.get(task.name, 0) + 1
        self._calls[task.name] = count
        node_id = task.name if count == 1 else f"{task.name}_{count}"
        while node_id in self._nodes:  # a task named like `x_2` already took the id
            count += 1
            node_id = f"{task.name}_{count}"
        where = f"pipeline {self.pipeline!r}, node {node_id!r}"
        targs = tuple(
            self._template(a, lambda i=i: f"{where}: argument {i}") for i, a in enumerate(args)
        )
        tkwargs = {
            k: self._template(v, lambda k=k: f"{where}: argument {k!r}") for k, v in kwargs.items()
        }
        task.check_call(targs, tkwargs, where=where, mapped=mapped)
        self._nodes[node_id] = {
            "task": task,
            "args": targs,
            "kwargs": tkwargs,
            "mapped": mapped,
            "after": [],
        }
        self.add_after(node_id, after)
        return Placeholder(self, NodeRef(node_id))

    def add_after(self, node_id: str, nodes: Iterable[object]) -> None:
        """Add ordering edges: `node_id` waits for each of `nodes`."""
        if isinstance(nodes, Placeholder):
            nodes = [nodes]
        for other in nodes:
            if not isinstance(other, Placeholder) or not isinstance(other.ref, NodeRef):
                raise TracingError(
                    f"pipeline {self.pipeline!r}, node {node_id!r}: after= takes task outputs "
                    f"(placeholders returned by task calls), got {other!r}"
                )
            if other.ref.node == node_id:
                raise TracingError(
                    f"pipeline {self.pipeline!r}: node {node_id!r} cannot run after itself"
                )
            after = self._nodes[node_id]["after"]
            if other.ref.node not in after:
                after.append(other.ref.node)

    def build(self, output: Any) -> Graph:
        """Freeze the recorded nodes into a validated Graph."""
        nodes = {
            node_id: Node(
                id=node_id,
                task=spec["task"],
                args=spec["args"],
                kwargs=spec["kwargs"],
                mapped=spec["mapped"],
                after=tuple(spec["after"]),
            )
            for node_id, spec in self._nodes.items()
        }
        return Graph(
            self.pipeline,
            nodes,
            self._template(output, lambda: f"pipeline {self.pipeline!r}: the return value"),
        )

    def _template(self, value: Any, where: Any) -> Any:
        """Replace placeholders by refs; refuse constants that can't be stored."""
        if isinstance(value, VersionRef):
            return value
        if isinstance(value, Placeholder):
            if value._builder is not self:
                raise TracingError(f"{where()} is a placeholder from another pipeline")
            return value.ref
        if isinstance(value, list):
            return [self._template(v, where) for v in value]
        if isinstance(value, tuple):
            return tuple(self._template(v, where) for v in value)
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                check_literal(value, where)  # raises: keys must be strings to hash and store
            return {k: self._template(v, where) for k, v in value.items()}
        if inspect.isgenerator(value):
            raise TracingError(f"{where()} is a generator; pass a list")
        check_literal(value, where)
        return value


def _builtin(task: Task) -> bool:
    return str(getattr(task.fn, "__module__", "")).startswith("lockgate.")


def _where_defined(task: Task) -> str:
    code = getattr(task.fn, "__code__", None)
    if code is None:
        return task.target
    return f"{code.co_filename}:{code.co_firstlineno}"


def contains_placeholder(values: Iterable[Any]) -> bool:
    """True if any value (searched through lists, tuples, dicts) is a Placeholder."""
    for value in values:
        if isinstance(value, Placeholder):
            return True
        if isinstance(value, list | tuple) and contains_placeholder(value):
            return True
        if isinstance(value, dict) and contains_placeholder(value.values()):
            return True
    return False
