"""A real local Ray cluster for the test session, on loopback, 2 CPUs, no dashboard.

`ray_address` starts Ray once in the test process the way lockgate does
(`lockgate.executors.ray.import_ray`: loopback only, no usage stats) with
its session files in a short temp dir, and returns the cluster's address,
so in-process executors reuse the connection and CLI subprocesses join with
`--ray-address`. The cluster also offers one unit of a custom resource,
`special`, to show that task resources reach Ray. Without Ray the tests that
use it skip with the reason, except under `CI=true`, where it is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

CPUS = 2


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The address (`127.0.0.1:PORT`) of a Ray cluster this process is connected to."""
    try:
        import ray
    except ImportError:
        message = "Ray tests need Ray: pip install 'lockgate[ray]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: make test installs it)")
        pytest.skip(message)
    from lockgate.executors.ray import import_ray

    ray = import_ray(None)
    # Ray's socket paths must stay under 108 bytes: a short dir of our own.
    temp = tempfile.mkdtemp(prefix="lgray-", dir="/tmp")
    ray.init(
        num_cpus=CPUS,
        resources={"special": 1},
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        _temp_dir=temp,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
