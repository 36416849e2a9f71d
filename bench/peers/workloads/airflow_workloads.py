"""Airflow's workloads: a TaskFlow DAG run with `dag.test()`, state in SQLite.

run.py gives each process a fresh AIRFLOW_HOME holding a copy of a metadata
database migrated once per invocation (`airflow db migrate`, reported apart),
with examples and logging down to WARNING. `dag.test()` runs every task in
this process and records each task instance in the database (durable).
Values move between tasks as XComs, which Airflow serializes to JSON in its
database: a 100 MB numpy array is not a supported XCom value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Unsupported, main

DAG_FILE = """
import datetime

from airflow.sdk import dag, task

WORKLOAD, N = {workload!r}, {n!r}


@task
def noop(previous: int) -> int:
    return previous + 1


@task
def gather(values: list) -> int:
    return len(values)


@dag(
    dag_id=f"{{WORKLOAD}}_{{N}}",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
)
def pipeline():
    if WORKLOAD == "chain":
        value = noop.override(task_id="n1")(0)
        for i in range(2, N + 1):
            value = noop.override(task_id=f"n{{i}}")(value)
    else:
        source = noop.override(task_id="source")(-1)
        gather([noop.override(task_id=f"b{{i}}")(source) for i in range(N)])


instance = pipeline()
"""


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    if workload == "diamond":
        raise Unsupported(
            "XComs are stored as JSON in the metadata DB; a 100 MB numpy array is neither "
            "JSON-serializable nor meant for XCom (Airflow's docs: pass references, not data)"
        )
    import importlib.util
    import os

    # dag.test() syncs the DAG from its file in the dags folder, as a DAG file's
    # `if __name__ == "__main__": dag.test()` does in Airflow's docs.
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{workload}_{n}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DAG_FILE.format(workload=workload, n=n))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    instance = module.instance
    sink = f"n{n}" if workload == "chain" else "gather"

    def run() -> Any:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        dag_run = instance.test()
        if dag_run.state != "success":
            raise RuntimeError(f"dag run ended {dag_run.state}")
        with create_session() as session:
            ti = (
                session.query(TaskInstance)
                .filter_by(dag_id=instance.dag_id, run_id=dag_run.run_id, task_id=sink)
                .one()
            )
            return ti.xcom_pull(task_ids=sink, session=session)

    return run


if __name__ == "__main__":
    main(setup)
