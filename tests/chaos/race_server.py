"""A `lockgate server` whose scheduler clock runs fast, for the multi-server race test.

Every server of one race reads the same RACE_T0 (simulated start, Unix s),
RACE_WALL0 (the wall-clock moment the simulated clock starts moving) and
RACE_SPEED, so they agree on what time it is; the clock stops at RACE_END,
so the number of ticks is fixed however slow the machine is. Everything else
is the real server: HTTP API, scheduler, launcher, driver subprocesses.
"""

from __future__ import annotations

import datetime as dt
import os
import time

from lockgate.server.daemon import Server, options_for
from lockgate.service.compose import Workspace

T0 = float(os.environ["RACE_T0"])
WALL0 = float(os.environ["RACE_WALL0"])
SPEED = float(os.environ["RACE_SPEED"])
END = float(os.environ["RACE_END"])


def clock() -> dt.datetime:
    simulated = T0 + max(0.0, time.time() - WALL0) * SPEED
    return dt.datetime.fromtimestamp(min(simulated, END), dt.UTC)


if __name__ == "__main__":
    workspace = Workspace()
    options = options_for(
        workspace,
        port=int(os.environ["RACE_PORT"]),
        poll_interval=0.05,
        max_concurrent_runs=2,
        executor="inline",
        drain_timeout=5.0,
    )
    Server(workspace, options, clock=clock).serve()
