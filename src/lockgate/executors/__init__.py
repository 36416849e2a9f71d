"""Executors: run one task invocation and report its outcome.

`inline` runs in the coordinator's process; more executors implement the same
port (`lockgate.ports.executor.Executor`).
"""
