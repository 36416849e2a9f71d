"""Luigi's workloads: the local scheduler, one worker, each task's output a file target.

A task is done when its target exists, so state survives a crash (durable,
without fsync). The diamond's arrays go through np.save / np.load on the
targets, which is how Luigi tasks hand data on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    import luigi
    import numpy as np

    root = workdir / "targets"

    def read_int(target: Any) -> int:
        with target.open("r") as handle:
            return int(handle.read())

    def write_int(target: Any, value: int) -> None:
        with target.open("w") as handle:
            handle.write(str(value))

    class Noop(luigi.Task):
        index = luigi.IntParameter()

        def requires(self) -> Any:
            return Noop(index=self.index - 1) if self.index > 1 else []

        def output(self) -> Any:
            return luigi.LocalTarget(str(root / f"noop_{self.index}"))

        def run(self) -> None:
            previous = read_int(self.input()) if self.index > 1 else 0
            write_int(self.output(), previous + 1)

    class Source(luigi.Task):
        def output(self) -> Any:
            return luigi.LocalTarget(str(root / "source"))

        def run(self) -> None:
            write_int(self.output(), -1)

    class Branch(luigi.Task):
        index = luigi.IntParameter()

        def requires(self) -> Any:
            return Source()

        def output(self) -> Any:
            return luigi.LocalTarget(str(root / f"branch_{self.index}"))

        def run(self) -> None:
            write_int(self.output(), read_int(self.input()) + 1)

    class Gather(luigi.Task):
        def requires(self) -> Any:
            return [Branch(index=i) for i in range(n)]

        def output(self) -> Any:
            return luigi.LocalTarget(str(root / "gather"))

        def run(self) -> None:
            values = [read_int(target) for target in self.input()]
            write_int(self.output(), len(values))

    class ArrayTask(luigi.Task):
        def output(self) -> Any:
            return luigi.LocalTarget(str(root / f"{self.task_family}.npy"), format=luigi.format.Nop)

        def save(self, array: Any) -> None:
            with self.output().open("w") as handle:
                np.save(handle, array)

    def load(target: Any) -> Any:
        with target.open("r") as handle:
            return np.load(handle)

    class MakeArray(ArrayTask):
        def run(self) -> None:
            self.save(np.ones(ARRAY_ELEMENTS))

    class Double(ArrayTask):
        def requires(self) -> Any:
            return MakeArray()

        def run(self) -> None:
            self.save(load(self.input()) * 2)

    class Increment(ArrayTask):
        def requires(self) -> Any:
            return MakeArray()

        def run(self) -> None:
            self.save(load(self.input()) + 1)

    class Combine(luigi.Task):
        def requires(self) -> Any:
            return [Double(), Increment()]

        def output(self) -> Any:
            return luigi.LocalTarget(str(root / "combine"))

        def run(self) -> None:
            a, b = (load(target) for target in self.input())
            with self.output().open("w") as handle:
                handle.write(repr(float(a[0] + b[0] + a.size)))

    sink = {"chain": lambda: Noop(index=n), "fanout": Gather, "diamond": Combine}[workload]()

    def run() -> Any:
        ok = luigi.build([sink], local_scheduler=True, workers=1, log_level="WARNING")
        if not ok:
            raise RuntimeError("luigi.build reported a failure")
        with sink.output().open("r") as handle:
            return float(handle.read())

    return run


if __name__ == "__main__":
    main(setup)
