"""The peers report: bench/results/peers.md for people, peers.json for tools.

Per workload, one table row per (peer, configuration) with setup, run time,
per-task overhead, peak RSS and how lockgate (inline, process) compares with
that peer, all from the same invocation. Runs that could not happen
(unsupported, failed, skipped past the budget) say why instead of a number.
A last section holds lockgate's performance targets against this
invocation's figures (reported here, asserted nowhere).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from results_file import RESULTS, write_rows

TITLES = {
    ("chain", 100): "Chain of 100 no-op tasks",
    ("chain", 1000): "Chain of 1,000 no-op tasks",
    ("fanout", 100): "Fan-out of 100 (one source, 100 no-op tasks, one sink)",
    ("fanout", 1000): "Fan-out of 1,000 (one source, 1,000 no-op tasks, one sink)",
    ("diamond", 1): "Diamond passing a 100 MiB numpy array (a -> b, c -> d)",
}


def per_task_ms(row: Any, workload: tuple[str, int]) -> float | None:
    many, single = row.medians(workload), row.medians(("chain", 1))
    if many is None or single is None or workload[0] == "diamond":
        return None
    return (many["run_s"] - single["run_s"]) / workload[1] * 1000


def cost(row: Any, workload: tuple[str, int]) -> float | None:
    """What the ratio compares: per-task overhead, or the diamond's run time."""
    if workload[0] == "diamond":
        found = row.medians(workload)
        return found["run_s"] if found else None
    return per_task_ms(row, workload)


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "-"
    if ours <= 0 or theirs <= 0:
        return "n/a (below noise)"
    if theirs < 0.001:  # plain Python's calls: no overhead to compare with
        return "n/a"
    if theirs >= ours:
        return f"{theirs / ours:.1f}x faster"
    return f"{ours / theirs:.1f}x slower"


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def workload_table(rows: list[Any], workload: tuple[str, int]) -> list[str]:
    inline = next((r for r in rows if r.key == "lockgate/inline"), None)
    process = next((r for r in rows if r.key == "lockgate/process"), None)
    ours_inline = cost(inline, workload) if inline else None
    ours_process = cost(process, workload) if process else None
    compared = "run time" if workload[0] == "diamond" else "per-task overhead"
    lines = [
        f"## {TITLES[workload]}",
        "",
        f"Ratios compare {compared}: '3.0x faster' means the peer's figure is 3.0x lockgate's.",
        "",
        "| peer | setup s | run s | per task ms | peak RSS MB | lockgate inline is | "
        "lockgate process is | runs |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    notes = []
    for row in rows:
        if row.problem:
            continue
        found = row.medians(workload)
        verdict = row.verdicts.get(workload)
        runs = row.runs.get(workload, [])
        failed = [r for r in runs if not r.get("ok") and not r.get("unsupported")]
        if failed and not (verdict or "").startswith("failed"):
            notes.append(
                f"- **{row.config.label}**: {len(failed)} of {len(runs)} runs failed: "
                f"{failed[0]['error']}"
            )
        if found is None:
            short = (verdict or ("failed" if failed else "not run")).split(":")[0]
            lines.append(f"| {row.config.label} | - | - | - | - | {short} | {short} | 0 |")
            if verdict:
                notes.append(f"- **{row.config.label}**: {verdict}")
            continue
        theirs = cost(row, workload)
        vs_inline = "" if row is inline else ratio(ours_inline, theirs)
        vs_process = "" if row is process else ratio(ours_process, theirs)
        lines.append(
            f"| {row.config.label} | {found['setup_s']:.2f} | {found['run_s']:.2f} | "
            f"{number(per_task_ms(row, workload), 3)} | {found['peak_rss_mb']:.0f} | "
            f"{vs_inline} | {vs_process} | {found['count']} |"
        )
    return [*lines, "", *notes, *([""] if notes else [])]


def _durable(row: Any) -> bool:
    return not row.config.durable.startswith("no") and row.peer.name != "lockgate"


def _fastest(rows: list[Any], workload: tuple[str, int], figure: Any) -> tuple[Any, float] | None:
    """The durable peer with the smallest positive `figure(row)` for `workload`, and it.

    For the diamond, durable means its arrays are kept too, not only its events.
    """
    found = [
        (row, figure(row))
        for row in rows
        if _durable(row)
        and row.medians(workload)
        and (row.config.keeps_outputs or workload[0] != "diamond")
    ]
    found = [(row, value) for row, value in found if value is not None and value > 0]
    return min(found, key=lambda pair: pair[1]) if found else None


def targets_table(rows: list[Any], cli_s: float | None) -> list[str]:
    """lockgate's targets (docs/benchmarks.md), each with this invocation's figures."""
    by_key = {row.key: row for row in rows}
    inline, process = by_key.get("lockgate/inline"), by_key.get("lockgate/process")
    lines = [
        "## lockgate's targets, against this run",
        "",
        "Reported, not asserted. 'Fastest durable peer' is the fastest peer above whose "
        "state survives its process (not Hamilton, Ray or plain Python), in this invocation; "
        "for the diamond, one that keeps the arrays too (not Prefect, whose results are not "
        "kept, nor Dagster ops, whose outputs stay in memory).",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]

    def add(target: str, measured: str, met: bool | None) -> None:
        verdict = "-" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {target} | {measured} | {verdict} |")

    chain = ("chain", 1000)
    best = _fastest(rows, chain, lambda r: per_task_ms(r, chain))
    ray = by_key.get("ray")
    ray_ms = per_task_ms(ray, chain) if ray else None
    for row, share in ((inline, 10), (process, 5)):
        ours = per_task_ms(row, chain) if row else None
        if row is None or ours is None:
            continue
        if best:
            add(
                f"chain of 1,000, {row.config.label}: per task <= 1/{share} of the fastest "
                "durable peer's",
                f"{ours:.3f} ms vs {best[0].config.label} {best[1]:.3f} ms ({best[1] / ours:.1f}x)",
                ours <= best[1] / share,
            )
        if row is process and ray_ms is not None:
            add(
                "chain of 1,000, lockgate process: per task below Ray's",
                f"{ours:.3f} ms vs Ray {ray_ms:.3f} ms",
                ours < ray_ms,
            )
    fan = ("fanout", 1000)
    best = _fastest(rows, fan, lambda r: (r.medians(fan) or {}).get("run_s"))
    found = process.medians(fan) if process else None
    if best and found:
        add(
            "fan-out of 1,000, process: end to end <= 1/5 of the fastest durable peer's",
            f"{found['run_s']:.2f} s vs {best[0].config.label} {best[1]:.2f} s "
            f"({best[1] / found['run_s']:.1f}x)",
            found["run_s"] <= best[1] / 5,
        )
    diamond = ("diamond", 1)
    plain = by_key.get("baseline")
    plain_s = (plain.medians(diamond) or {}).get("run_s") if plain else None
    best = _fastest(rows, diamond, lambda r: (r.medians(diamond) or {}).get("run_s"))
    for row in (inline, process):
        found = row.medians(diamond) if row else None
        if not found:
            continue
        if plain_s:
            add(
                f"100 MB diamond, {row.config.label}: <= 2x plain numpy save/load",
                f"{found['run_s']:.2f} s vs {plain_s:.2f} s ({found['run_s'] / plain_s:.1f}x)",
                found["run_s"] <= 2 * plain_s,
            )
        if best:
            add(
                f"100 MB diamond, {row.config.label}: faster than every durable peer",
                f"{found['run_s']:.2f} s vs {best[0].config.label} {best[1]:.2f} s",
                found["run_s"] < best[1],
            )
    single = inline.medians(("chain", 1)) if inline else None
    if single:
        start = single["setup_s"] + single["run_s"]
        add(
            "import lockgate + trace + a 1-task run (inline) <= 0.5 s",
            f"{start:.2f} s (setup, numpy's import included, plus the run)",
            start <= 0.5,
        )
    if cli_s is not None:
        add(
            "`lockgate run` of a 100-node chain, the whole command <= 1 s",
            f"{cli_s:.2f} s (default executor, fresh state directory)",
            cli_s <= 1.0,
        )
    return [*lines, ""]


def write_report(
    rows: list[Any],
    *,
    machine: dict[str, Any],
    repeat: int,
    quick: bool,
    total_s: float,
    budget: float,
    notes: list[str],
    cli_s: float | None = None,
    date: str | None = None,
) -> Path:
    """Write peers.md and peers.json under bench/results; the markdown file's path."""
    date = date or time.strftime("%Y-%m-%d")
    load = ", ".join(f"{x:.1f}" for x in machine["load_average"])
    lines = [
        "# lockgate and its peers: what a task costs",
        "",
        f"Generated by `make bench-peers` (bench/peers/run.py) on "
        f"{date}{' with --quick' if quick else ''}; do not edit by hand. "
        "How each peer is run and why the comparison is fair: "
        "[docs/benchmarks.md](../../docs/benchmarks.md).",
        "",
        f"- Machine: {machine['cpus']} CPUs ({machine['cpu']}), {machine['memory_gb']} GB RAM, "
        f"Python {machine['python']} for every peer; load average at the end {load}",
        f"- Each figure is the median of {repeat} runs, each in a fresh process and a fresh "
        "temporary directory; runs went round-robin over the peers",
        "- **setup**: imports and definitions (and starting a local server where the peer "
        "needs one), in the measured process; **run**: from the call that runs the workload "
        "to its result; **per task**: (run of N - run of a 1-task chain) / N",
        "- **peak RSS**: the process and all its children (servers, workers), summed",
        f"- A 1,000-task run is skipped when the 100-task runs project it past {budget:.0f} s",
        f"- Total wall time of this invocation: {total_s / 60:.1f} min",
        *(f"- {note}" for note in notes),
        "",
        "## Peers and how they ran",
        "",
        "| peer | version | durable state | executor | one-time init s | 1-task run s |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    for row in rows:
        if row.problem:
            lines.append(f"| {row.config.label} | - | {row.problem} | - | - | - |")
            continue
        single = row.medians(("chain", 1))
        lines.append(
            f"| {row.config.label} | {row.version} | {row.config.durable} | {row.config.executor} "
            f"| {number(row.init_s, 1)} | {number(single and single['run_s'], 2)} |"
        )
    lines.append("")
    measured = sorted({w for row in rows for w in row.runs} - {("chain", 1)}, key=order)
    for workload in measured:
        lines += workload_table(rows, workload)
    lines += targets_table(rows, cli_s)
    path = RESULTS / "peers.md"
    RESULTS.mkdir(exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")
    write_rows(
        "peers",
        json_rows(rows, measured),
        date=date,
        machine=machine,
        repeat=repeat,
        quick=quick,
        total_s=round(total_s, 1),
        budget=budget,
        notes=notes,
        cli_s=cli_s,
        peers={row.key: row_meta(row) for row in rows},
        runs=raw_runs(rows),
    )
    return path


def order(workload: tuple[str, int]) -> tuple[int, int]:
    return (("chain", "fanout", "diamond").index(workload[0]), workload[1])


def json_rows(rows: list[Any], measured: list[tuple[str, int]]) -> list[tuple[str, str, str]]:
    out = []
    for workload in measured:
        for row in rows:
            found = row.medians(workload)
            name = f"{workload[0]} {workload[1]}: {row.config.label} {row.version}"
            if found is None:
                out.append((name, "-", row.problem or row.verdicts.get(workload, "not run")))
                continue
            per_task = per_task_ms(row, workload)
            value = f"{found['run_s']:.3f} s"
            note = f"setup {found['setup_s']:.2f} s, peak RSS {found['peak_rss_mb']:.0f} MB"
            if per_task is not None:
                note = f"{per_task:.3f} ms per task, {note}"
            out.append((name, value, note))
    return out


def row_meta(row: Any) -> dict[str, Any]:
    verdicts = {f"{w} {n}": text for (w, n), text in row.verdicts.items()}
    return {
        "version": row.version,
        "init_s": row.init_s,
        "problem": row.problem,
        "verdicts": verdicts,
    }


def raw_runs(rows: list[Any]) -> dict[str, Any]:
    return {row.key: {f"{w} {n}": runs for (w, n), runs in row.runs.items()} for row in rows}
