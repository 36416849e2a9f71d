"""Where an attempt's captured output lives, relative to the logs root.

Executors write each attempt's stdout, stderr and log records to
`<logs root>/<run id>/<node>[.<map index>]/<attempt>.log`; the `lockgate logs`
command reads the same path. Run ids and node ids are checked so a path can
never leave the logs root.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_RUN = re.compile(r"r-[0-9A-Za-z-]{1,60}")
_NODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


def log_relpath(run_id: str, node_id: str, map_index: int | None, attempt: int) -> PurePosixPath:
    """The log file of one attempt, relative to the logs root.

    Raises:
        ValueError: an id could escape the logs root.
    """
    if not _RUN.fullmatch(run_id) or not _NODE.fullmatch(node_id):
        raise ValueError(f"cannot build a log path for run {run_id!r}, node {node_id!r}")
    if attempt < 1 or (map_index is not None and map_index < 0):
        raise ValueError(f"invalid attempt {attempt} / map index {map_index}")
    node = node_id if map_index is None else f"{node_id}.{map_index}"
    return PurePosixPath(run_id, node, f"{attempt}.log")
