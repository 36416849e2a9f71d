"""Executors: run one task invocation and report its outcome.

`process` (the default) runs invocations in a pool of worker processes, each
in its own session so a timeout or cancel can kill its whole process group;
`inline` runs them one at a time in the coordinator's thread. Both implement
`lockgate.ports.executor.Executor` and share the worker side in `invoke.py`.
"""
