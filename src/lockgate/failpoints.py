"""Named failpoints: crash or fail lockgate at an exact place, for fault tests.

Enabled only by the environment variable LOCKGATE_FAILPOINTS, a `;`-separated
list of `NAME[@NODE]:ACTION[:PROBABILITY]`:

    LOCKGATE_FAILPOINTS="task.before_start@train:kill"
    LOCKGATE_FAILPOINTS="artifact.after_tmp_write:kill:0.3;db.before_commit:raise"

Actions: `kill` (SIGKILL this process), `exit` (os._exit(70)), `raise`
(raise FailpointError), `sleep=<seconds>`. `@NODE` limits the point to one
node (a map item is `node[i]`). Randomness uses LOCKGATE_CHAOS_SEED when set,
so a failing run can be replayed. With the variable unset, `hit` costs one
global lookup. Places that know only a description ("output of node 'b' (run
r-1)") match `@b` too.

Points compiled in: task.before_start, task.after_return_before_commit,
artifact.after_tmp_write, artifact.after_fsync_before_rename,
artifact.after_rename_before_db, db.before_commit, db.after_commit_before_ack,
lineage.before_emit, message.before_ack.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from dataclasses import dataclass

from lockgate.errors import LockgateError


class FailpointError(LockgateError):
    """Raised by a failpoint whose action is `raise`."""


@dataclass(frozen=True, slots=True)
class _Rule:
    node: str | None
    action: str
    probability: float


_rules: dict[str, list[_Rule]] | None = None
_random = random.Random()  # noqa: S311 - reproducible fault injection, not security


def _load() -> dict[str, list[_Rule]]:
    rules: dict[str, list[_Rule]] = {}
    spec = os.environ.get("LOCKGATE_FAILPOINTS", "")
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        fields = item.split(":")
        if len(fields) not in (2, 3):
            raise LockgateError(f"LOCKGATE_FAILPOINTS entry {item!r} is not NAME[@NODE]:ACTION[:P]")
        name, _, node = fields[0].partition("@")
        probability = float(fields[2]) if len(fields) == 3 else 1.0
        rules.setdefault(name, []).append(_Rule(node or None, fields[1], probability))
    seed = os.environ.get("LOCKGATE_CHAOS_SEED")
    if seed is not None:
        _random.seed(int(seed))
    return rules


def reset() -> None:
    """Re-read LOCKGATE_FAILPOINTS (tests change it between cases)."""
    global _rules
    _rules = None


def hit(name: str, node: str | None = None) -> None:
    """Pass the failpoint `name`, at `node` if the place knows it."""
    global _rules
    if _rules is None:
        _rules = _load()
    if not _rules:
        return
    for rule in _rules.get(name, ()):
        if rule.node is not None and not _matches(rule.node, node):
            continue
        if rule.probability < 1.0 and _random.random() >= rule.probability:
            continue
        _act(name, rule.action)


def _matches(wanted: str, node: str | None) -> bool:
    # Stores know only a description such as "output of node 'train' (run r-1)".
    return node is not None and (node == wanted or f"node {wanted!r}" in node)


def _act(name: str, action: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(70)
    elif action == "raise":
        raise FailpointError(f"failpoint {name} fired")
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))
    else:
        raise LockgateError(
            f"failpoint {name}: unknown action {action!r} (kill, exit, raise, sleep=S)"
        )
