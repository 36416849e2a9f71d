"""A 30-node pipeline (loads, features, flaky training, scores, pairs, report) for chaos runs."""

import os
import pathlib

import lockgate as lg

MARKS = pathlib.Path(os.environ.get("CHAOS_MARKS", "."))


def mark(name: str) -> None:
    # One byte per execution of a node, per run: executions may repeat, commits may not.
    ctx = lg.current()
    with (MARKS / f"{ctx.run_id}.{ctx.node_id}").open("a") as handle:
        handle.write("x")


@lg.task
def load(seed: int) -> list:
    mark("load")
    return list(range(seed, seed + 4000))  # a blob, not inline


@lg.task
def feature(rows: list, k: int) -> list:
    mark("feature")
    return [r * k for r in rows[: 500 * k]]  # small ones inline, big ones blobs


@lg.task(retries=2, retry_delay=0.1)
def train(features: list, k: int) -> dict:
    mark("train")
    if k == 3 and lg.current().attempt == 1:
        raise RuntimeError("a flaky first attempt")
    return {"k": k, "weight": sum(features) % 9973}


@lg.task
def score(model: dict) -> float:
    mark("score")
    return model["weight"] / 9973


@lg.task
def pair(a: float, b: float) -> float:
    mark("pair")
    return (a + b) / 2


@lg.task
def report(scores: list) -> dict:
    mark("report")
    return {"mean": sum(scores) / len(scores), "n": len(scores)}


@lg.pipeline
def thirty(seed: int = 1):
    rows = load(seed)
    scores = [score(train(feature(rows, k), k)) for k in range(1, 9)]
    pairs = [pair(scores[i], scores[i + 1]) for i in range(0, 8, 2)]
    return report(pairs)
