"""The run coordinator: readiness, retries, skips, commits and events.

Synchronous by design: concurrency comes from executors. The coordinator
never loads task data; it hands refs to executors and commits refs back.
"""
