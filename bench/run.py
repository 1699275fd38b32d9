"""``make bench``: what the provider costs its users, side by side with the alternatives, in one run.

Runs every row of the benchmark (see docs/benchmarks.md), prints one table (figure, budget, MET or
MISSED) and writes the results, raw measurements included, to ``build/bench/results.json``. Exits 1
when any budget is missed (or a row could not be measured), 0 otherwise.

Every row runs in fresh worker processes (``bench/<row>.py``); the EnOS emulator runs in a process of
its own (``bench/emulator_host.py``), except in row 6 where ``dag.test()`` and the emulator share one.
Comparisons are measured in the same run, interleaved, and their ratios are taken pair by pair.

    python bench/run.py            # the full run (about 7.5 minutes on 2 cores)
    python bench/run.py --quick    # a smoke run with fewer repeats and a 35 s wait in row 5
    python bench/run.py --rows 2,3 # only some rows (the capacity row is "C")
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
from common import EmulatorProcess, run_worker, summary

OUR_MODULES = [
    "airflow_enos_provider.operators.flow_instance",
    "airflow_enos_provider.operators.flow",
    "airflow_enos_provider.sensors.flow_instance",
    "airflow_enos_provider.triggers.flow_instance",
    "airflow_enos_provider.triggers.flow_instance_event",
    "airflow_enos_provider.notifications.flow_instance",
]
HOOK_MODULE = "airflow_enos_provider.hooks.enos"
ANCHORS = ["airflow.providers.http.operators.http", "airflow.providers.dbt.cloud.operators.dbt"]
# The Airflow module each of ours subclasses from (Airflow 3 first, then 2.11's path): the "version's
# own base import" the 15 ms budget is on top of. The ratio to the anchors uses the figure that includes
# the base, like for like: an anchor's figure includes its own base classes.
AIRFLOW_BASES = {
    OUR_MODULES[0]: "airflow.sdk.bases.operator,airflow.models.baseoperator",
    OUR_MODULES[1]: "airflow.sdk.bases.operator,airflow.models.baseoperator",
    OUR_MODULES[2]: "airflow.sdk.bases.sensor,airflow.sensors.base",
    OUR_MODULES[3]: "airflow.triggers.base",
    OUR_MODULES[4]: "airflow.triggers.base",
    OUR_MODULES[5]: "airflow.sdk.bases.notifier,airflow.notifications.basenotifier",
}
# The base a DAG file has imported anyway: the task SDK on Airflow 3, `from airflow import DAG` on 2.11;
# then the first importable module of each comma-separated group in argv[2:]; then argv[1] is timed.
IMPORT_SNIPPET = """
import importlib, sys, time
try:
    import airflow.sdk
except ImportError:
    import airflow.models.dag
for group in sys.argv[2:]:
    for base in group.split(","):
        try:
            importlib.import_module(base)
            break
        except ImportError:
            pass
started = time.perf_counter()
importlib.import_module(sys.argv[1])
print((time.perf_counter() - started) * 1000)
"""
PARSE_BUDGET_MS = 15.0
PARSE_RATIO = 1 / 8
CLIENT_RATIO = 1.3
BULK_COUNT = 1000
BULK_LATENCY = 0.02
BULK_CONCURRENCY = 16
BULK_FLOOR_S = BULK_COUNT * BULK_LATENCY / BULK_CONCURRENCY
BULK_BUDGET_S = 1.5 * BULK_FLOOR_S
BULK_SPEEDUP = 10.0
KILL_COUNT = 2000
KILL_PAGE = 100  # CancelFlowInstanceOperator searches in pages of 100
KILL_RATIO = 1.3
SCHEDULE_MS = 100  # row S: the emulator starts an instance of the flow every 100 ms
TRIGGERS = 1000
POLL_INTERVAL = 30.0
CPU_PER_POLL_MS = 2.0
MEMORY_PER_TRIGGER_KB = 50.0
LATENESS_S = 1.0
CAPACITY_MARGIN = 1.25
WATCH_INTERVAL = 1.0
# A shared poll per flow: one search, and a Get Flow every 10th poll (the flow's scheduling type): 1.1
# requests per flow and round, plus slack for a poll that falls on the edge of the window.
WATCH_REQUESTS_PER_FLOW = 1.5
WATCH_CPU_RATIO = 0.5


@dataclass
class Row:
    """One line of the table."""

    number: str
    what: str
    figure: str
    budget: str
    verdict: str  # MET, MISSED, reported, ERROR


def fmt(stats: dict[str, Any], unit: str = "", digits: int = 1) -> str:
    """Format a summary as ``median [min-max]``."""
    if not stats.get("n"):
        return "-"
    m, lo, hi = (f"{stats[k]:.{digits}f}" for k in ("median", "min", "max"))
    return f"{m}{unit} [{lo}-{hi}]"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def short(module: str) -> str:
    return module.replace("airflow_enos_provider.", "").replace("airflow.providers.", "")


# ----------------------------------------------------------------------------- row 1


def row_parse_cost(quick: bool, raw: dict[str, Any]) -> list[Row]:
    rounds = 3 if quick else 10
    # (module, bases): ours twice, on the DAG file's base alone and on their own Airflow base too.
    runs = [(m, ()) for m in [*OUR_MODULES, HOOK_MODULE, *ANCHORS]]
    runs += [(m, (AIRFLOW_BASES[m],)) for m in OUR_MODULES]
    env = common.private_airflow_env()
    # Every module loads from bytecode, as from an installed package (pip compiles on install): with
    # PYTHONDONTWRITEBYTECODE set (as on this machine) our source tree, unlike site-packages, would be
    # compiled on every import, and row 1 would time the compiler. A private prefix keeps the tree clean.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(common.OUT_DIR / "pycache")

    def import_ms(module: str, bases: tuple[str, ...]) -> float:
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_SNIPPET, module, *bases],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return float(done.stdout.strip().splitlines()[-1])

    for run in runs:  # writes the private airflow.cfg and the bytecode: not measured
        import_ms(*run)
    times: dict[tuple[str, tuple[str, ...]], list[float]] = {run: [] for run in runs}
    for number in range(rounds):
        shift = number % len(runs)
        for run in runs[shift:] + runs[:shift]:  # rotate, so no module always goes first
            times[run].append(import_ms(*run))
    cheaper = [min(times[(a, ())][i] for a in ANCHORS) for i in range(rounds)]
    raw["parse_cost"] = {
        "rounds": rounds,
        "import_ms": {m: t for (m, bases), t in times.items() if not bases},
        "own_import_ms": {m: t for (m, bases), t in times.items() if bases},
        "airflow_bases": AIRFLOW_BASES,
        "cheaper_anchor_ms": cheaper,
    }
    rows = []
    for module in [*OUR_MODULES, HOOK_MODULE, *ANCHORS]:
        stats = summary(times[(module, ())], 2)
        ratios = summary([t / c for t, c in zip(times[(module, ())], cheaper, strict=True)], 4)
        entry = {"ms": stats, "ratio_to_cheaper_anchor": ratios}
        raw["parse_cost"].setdefault("summary", {})[module] = entry
        if module in OUR_MODULES:
            own = entry["own_ms"] = summary(times[(module, (AIRFLOW_BASES[module],))], 2)
            ok = own["median"] <= PARSE_BUDGET_MS and ratios["median"] <= PARSE_RATIO
            spread = f"[{ratios['min']:.3f}-{ratios['max']:.3f}]"
            ratio = f"{ratios['median']:.3f}x anchor {spread}"
            figure = f"{fmt(own, ' ms')}; with its Airflow base {fmt(stats, ' ms')}, {ratio}"
            rows.append(Row("1", f"import {short(module)}", figure, "<= 15 ms and <= 0.125x", verdict(ok)))
        else:
            note = "not imported at parse time" if module == HOOK_MODULE else "anchor"
            rows.append(Row("1", f"import {short(module)} ({note})", fmt(stats, " ms"), "-", "reported"))
    return rows


# ----------------------------------------------------------------------------- row 2


def row_round_trips(quick: bool, raw: dict[str, Any]) -> list[Row]:
    repeats = 2 if quick else 3
    expected = {
        "fresh_process": {"token.get": 1, "flowInstances.cancel": 1},
        "warm_token": {"flowInstances.cancel": 1},
    }
    ids = common.instance_ids(2 * repeats)
    runs = []
    with EmulatorProcess(common.seed(len(ids))) as emulator:
        for number in range(repeats):
            runs.append(
                run_worker(
                    "round_trips.py", emulator.url, emulator.control_url, ids[2 * number], ids[2 * number + 1]
                )
            )
    raw["round_trips"] = runs
    rows = []
    for case, label in (("fresh_process", "fresh process"), ("warm_token", "warm token")):
        seen = [r[case]["requests"] for r in runs]
        outcomes = {o["outcome"] for r in runs for o in r[case]["result"].values()}
        ok = all(s == expected[case] for s in seen) and outcomes == {"cancelled"}
        counts = sorted({sum(s.values()) for s in seen})
        detail = " + ".join(f"{op} {n}" for op, n in seen[0].items())
        plural = "s" if counts != [1] else ""
        figure = (
            f"{'/'.join(map(str, counts))} request{plural} ({detail}), same in {len(runs)} fresh processes"
        )
        budget = "2 (token + cancel)" if case == "fresh_process" else "1 (cancel), no read first"
        rows.append(Row("2", f"requests per cancel task, {label}", figure, budget, verdict(ok)))
    return rows


# ----------------------------------------------------------------------------- row 3


def row_client_overhead(quick: bool, raw: dict[str, Any]) -> list[Row]:
    rounds, calls = (5, 100) if quick else (15, 200)
    with EmulatorProcess(common.seed(rounds * calls + 1), cancel_final="success") as emulator:
        result = run_worker("client_overhead.py", emulator.url, emulator.control_url, str(rounds), str(calls))
    raw["client_overhead"] = result
    per_round = result["rounds"]
    ratios = summary([r["hook_cpu_us"] / r["bare_cpu_us"] for r in per_round], 3)
    hook = summary([r["hook_cpu_us"] for r in per_round], 0)
    bare = summary([r["bare_cpu_us"] for r in per_round], 0)
    raw["client_overhead"]["summary"] = {"ratio": ratios, "hook_cpu_us": hook, "bare_cpu_us": bare}
    raw["client_overhead"]["bare_rate_rps"] = 1e6 / statistics.median(r["bare_wall_us"] for r in per_round)
    return [
        Row(
            "3",
            "client CPU per cancel, hook / bare requests",
            f"{fmt(ratios, 'x', 2)} ({hook['median']:.0f} / {bare['median']:.0f} us,"
            f" {len(per_round)} rounds)",
            "<= 1.3x",
            verdict(ratios["median"] <= CLIENT_RATIO),
        ),
        Row(
            "3",
            "new TCP connections after the first",
            f"{result['new_connections']} for {result['cancels']} calls"
            f" ({result['token_requests']} token requests)",
            "0",
            verdict(result["new_connections"] == 0),
        ),
    ]


# ----------------------------------------------------------------------------- row 4


def row_bulk_cancel(quick: bool, raw: dict[str, Any]) -> list[Row]:
    pairs = 1 if quick else 3
    runs: dict[str, list[dict[str, Any]]] = {"operator": [], "hook": [], "sequential": []}
    with EmulatorProcess(common.seed(0), latency=BULK_LATENCY) as emulator:
        for number in range(pairs):
            for index, mode in enumerate(runs, start=1):
                prefix = f"2438-{index}{number}"  # ids are digits-dash-digits, as EnOS's are
                emulator.call("add_instances", prefix=prefix, count=BULK_COUNT)
                result = run_worker(
                    "bulk_cancel.py", emulator.url, emulator.control_url, mode, prefix, str(BULK_COUNT)
                )
                if result["statuses"] != {"CANCEL": BULK_COUNT} or result["outcomes"] != ["cancelled"]:
                    raise RuntimeError(f"bulk cancel ({mode}) did not cancel every instance: {result}")
                runs[mode].append(result)
    walls = {mode: [r["wall_s"] for r in results] for mode, results in runs.items()}
    speedups = [s / o for s, o in zip(walls["sequential"], walls["operator"], strict=True)]
    stats = {mode: summary(w, 3) for mode, w in walls.items()}
    speedup = summary(speedups, 1)
    raw["bulk_cancel"] = {"runs": runs, "summary": {"wall_s": stats, "speedup": speedup}}
    operator, hook, sequential = stats["operator"], stats["hook"], stats["sequential"]
    conns = sorted({r["new_connections"] for r in runs["sequential"]})
    return [
        Row(
            "4",
            f"cancel {BULK_COUNT} (operator, max_concurrency=16, +20 ms)",
            f"{fmt(operator, ' s', 2)} = {operator['median'] / BULK_FLOOR_S:.2f}x floor;"
            f" hook alone {fmt(hook, ' s', 2)}",
            f"<= {BULK_BUDGET_S:.3f} s (1.5x {BULK_FLOOR_S:.2f} s)",
            verdict(operator["median"] <= BULK_BUDGET_S),
        ),
        Row(
            "4",
            "speed-up vs sequential loop, new connection each",
            f"{fmt(speedup, 'x', 1)} (loop {fmt(sequential, ' s', 1)}, {conns[-1]} connections)",
            ">= 10x",
            verdict(speedup["median"] >= BULK_SPEEDUP),
        ),
    ]


# ----------------------------------------------------------------------------- row K


def row_kill_switch(quick: bool, raw: dict[str, Any]) -> list[Row]:
    runs = []
    for _ in range(1 if quick else 3):
        seed = common.seed(KILL_COUNT, prefix="2438-9", flow_type=1)  # periodic; ids digits-dash-digits
        with EmulatorProcess(seed, latency=BULK_LATENCY) as emulator:
            result = run_worker(
                "kill_switch.py", emulator.url, emulator.control_url, "2438-9", str(KILL_COUNT)
            )
        if result["statuses"] != {"CANCEL": KILL_COUNT} or result["cancelled"] != KILL_COUNT:
            raise RuntimeError(f"the kill switch did not cancel every instance: {result}")
        # The floor: what a kill switch cannot do without, the serial requests in sequence (token, Get
        # Flow, one search per page of 100) and the cancels 16 at a time, 20 ms each.
        serial = 2 + -(-KILL_COUNT // KILL_PAGE)
        rounds = -(-KILL_COUNT // BULK_CONCURRENCY)
        result["floor_s"] = (serial + rounds) * BULK_LATENCY
        runs.append(result)
    walls = summary([r["wall_s"] for r in runs], 2)
    ratios = summary([r["wall_s"] / r["floor_s"] for r in runs], 2)
    raw["kill_switch"] = {"runs": runs, "summary": {"wall_s": walls, "ratio": ratios}}
    counts = ", ".join(f"{op} {n}" for op, n in sorted(runs[0]["requests"].items()))
    return [
        Row(
            "K",
            f"kill switch, {KILL_COUNT} active instances of a periodic flow (+20 ms, 16 in flight)",
            f"{fmt(walls, ' s', 2)} = {fmt(ratios, 'x', 2)} floor ({runs[0]['floor_s']:.2f} s); {counts}",
            f"<= {KILL_RATIO}x floor",
            verdict(ratios["median"] <= KILL_RATIO),
        )
    ]


# ----------------------------------------------------------------------------- row S


def row_schedule_race(quick: bool, raw: dict[str, Any]) -> list[Row]:
    runs: dict[str, list[dict[str, Any]]] = {"disable": [], "plain": []}
    for _ in range(1 if quick else 3):
        for mode in runs:  # interleaved, a fresh tenant each: the flow's schedule started
            seed = common.seed(0, flow_type=1)
            seed["flows"][0].update(schedule_every_ms=SCHEDULE_MS, init_seconds=0, run_seconds=3600)
            with EmulatorProcess(seed, latency=BULK_LATENCY) as emulator:
                runs[mode].append(
                    run_worker("kill_switch_schedule.py", emulator.url, emulator.control_url, mode)
                )
    raw["schedule_race"] = {"runs": runs}

    def figure(mode: str) -> str:
        left = summary([r["active_left"] for r in runs[mode]], 0)
        total = summary([sum(r["requests"].values()) for r in runs[mode]], 0)
        counts = ", ".join(f"{op} {n}" for op, n in sorted(runs[mode][0]["requests"].items()))
        later = summary([r["active_1s_later"] for r in runs[mode]], 0)
        return (
            f"{fmt(left, '', 0)} active left ({fmt(later, '', 0)} 1 s later);"
            f" {fmt(total, '', 0)} requests ({counts})"
        )

    ok = all(
        r["active_left"] == r["active_1s_later"] == 0 and r["schedule"]["changed"] for r in runs["disable"]
    )
    return [
        Row("S", f"kill switch + disable_flow, flow scheduled every {SCHEDULE_MS} ms (+20 ms)",
            figure("disable"), "0 active left (and 1 s later), every run", verdict(ok)),
        Row("S", "kill switch without disable_flow, same flow", figure("plain"), "-", "reported"),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- row 5


def row_deferred_waits(quick: bool, raw: dict[str, Any]) -> list[Row]:
    seconds = 35.0 if quick else 125.0  # 2 minutes: polls at 0, 30, 60, 90 and 120 s
    with EmulatorProcess(common.seed(TRIGGERS + 1)) as emulator:
        main = run_worker(
            "deferred_waits.py", emulator.url, emulator.control_url, str(TRIGGERS), str(seconds),
            str(POLL_INTERVAL), "run",
        )  # fmt: skip
        memory = run_worker(
            "deferred_waits.py", emulator.url, emulator.control_url, str(TRIGGERS), "0",
            str(POLL_INTERVAL), "tracemalloc",
        )  # fmt: skip
        floor = run_worker("transport_floor.py", emulator.url, str(TRIGGERS), "2" if quick else "3")
    first, later = main.pop("lateness_first_s"), main.pop("lateness_later_s")
    memory.pop("lateness_first_s"), memory.pop("lateness_later_s")
    lateness = {
        "first_poll": summary(first, 3) | {"p99": round(common.percentile(first, 99), 3)},
        "later_polls": summary(later, 3) | {"p99": round(common.percentile(later, 99), 3)},
    }
    latest = max(first + later)
    traced_kb = memory["traced_bytes_per_trigger"] / 1024
    transport = {name: summary(values, 3) for name, values in floor["cpu_per_request_ms"].items()}
    raw["deferred_waits"] = {
        "run": main,
        "lateness": lateness,
        "tracemalloc": memory,
        "transport_floor": floor | {"summary": transport},
    }
    if main["statuses"] != {"RUNNING": TRIGGERS} or main["events_fired"]:
        raise RuntimeError(f"the waited-for instances did not stay RUNNING: {main['statuses']}")
    memory_kb = max(main["rss_per_trigger_kb"], traced_kb)
    return [
        Row(
            "5",
            f"CPU per poll, {TRIGGERS} triggers, {seconds:.0f} s",
            f"{main['cpu_per_poll_ms']:.2f} ms over {main['polls_answered']} polls"
            f" (after start-up {main['steady_cpu_per_poll_ms']:.2f} ms)",
            "<= 2 ms",
            verdict(main["cpu_per_poll_ms"] <= CPU_PER_POLL_MS),
        ),
        Row(
            "5",
            "memory per waiting trigger",
            f"{main['rss_per_trigger_kb']:.1f} KB RSS; {traced_kb:.1f} KB traced",
            "<= 50 KB",
            verdict(memory_kb <= MEMORY_PER_TRIGGER_KB),
        ),
        Row(
            "5",
            "poll lateness (max; first poll / later polls)",
            f"{latest:.2f} s; first {fmt(lateness['first_poll'], ' s', 2)},"
            f" later {fmt(lateness['later_polls'], ' s', 2)}",
            "<= 1 s",
            verdict(latest <= LATENESS_S),
        ),
        Row(
            "5",
            "bare async request, 1000 at once: httpx / aiohttp",
            f"{fmt(transport['httpx'], ' ms', 2)} / {fmt(transport['aiohttp'], ' ms', 2)} CPU",
            "-",
            "reported",
        ),
    ]


# ----------------------------------------------------------------------------- row W


def row_event_watchers(quick: bool, raw: dict[str, Any]) -> list[Row]:
    seconds = "5" if quick else "20"
    runs: dict[str, list[dict[str, Any]]] = {"own": [], "shared": []}
    with EmulatorProcess(common.event_seed()) as emulator:
        for _ in range(1 if quick else 3):
            for mode in ("own", "shared"):  # interleaved, so both meet the same machine
                runs[mode].append(
                    run_worker(
                        "event_watchers.py", emulator.url, emulator.control_url, mode, seconds,
                        str(WATCH_INTERVAL),
                    )
                )  # fmt: skip
    stats = {
        mode: {key: summary([r[key] for r in done], 2) for key in ("requests_per_round", "cpu_per_round_ms")}
        for mode, done in runs.items()
    }
    ratios = summary(
        [
            s["cpu_per_round_ms"] / o["cpu_per_round_ms"]
            for o, s in zip(runs["own"], runs["shared"], strict=True)
        ],
        3,
    )
    raw["event_watchers"] = {"runs": runs, "summary": stats | {"cpu_ratio_shared_to_own": ratios}}
    flows = runs["own"][0]["flows"]
    own, shared = stats["own"], stats["shared"]
    requests_ok = shared["requests_per_round"]["max"] <= WATCH_REQUESTS_PER_FLOW * flows
    return [
        Row(
            "W",
            f"100 event watchers of {flows} flows, requests per poll round: own polls / shared",
            f"{fmt(own['requests_per_round'])} / {fmt(shared['requests_per_round'])}",
            f"shared <= {WATCH_REQUESTS_PER_FLOW:g} per flow",
            verdict(requests_ok),
        ),
        Row(
            "W",
            "100 event watchers, CPU per poll round: own polls / shared",
            f"{fmt(own['cpu_per_round_ms'], ' ms')} / {fmt(shared['cpu_per_round_ms'], ' ms')}"
            f" = {fmt(ratios, 'x', 3)}",
            f"shared <= {WATCH_CPU_RATIO:g}x own",
            verdict(ratios["median"] <= WATCH_CPU_RATIO),
        ),
    ]


# ----------------------------------------------------------------------------- row 6


def row_cancel_latency(quick: bool, raw: dict[str, Any]) -> list[Row]:
    result = run_worker("cancel_latency.py", "1" if quick else "5", timeout=900)
    raw["cancel_latency"] = result
    rows = []
    for pattern, label in (("teardown", "teardown"), ("failure_callback", "failure callback")):
        runs = [r for r in result["runs"] if r["pattern"] == pattern]
        bad = [
            r for r in runs if r["run_state"] != "failed" or r["instance_status"] != 8 or r["cancels"] != 1
        ]
        if bad:
            raise RuntimeError(f"{pattern}: a run did not end failed with the instance cancelled once: {bad}")
        latency = summary([r["latency_s"] * 1000 for r in runs], 1)
        figure = f"{fmt(latency, ' ms')} ({len(runs)} runs)"
        if pattern == "teardown":
            schedule = statistics.median(r["schedule_teardown_s"] for r in runs) * 1000
            start = statistics.median(r["teardown_start_to_cancel_s"] for r in runs) * 1000
            figure += f": {schedule:.0f} ms to start the teardown + {start:.0f} ms to its cancel"
        raw["cancel_latency"].setdefault("summary", {})[pattern] = latency
        rows.append(
            Row("6", f"failure -> cancel at EnOS, {label} (dag.test)", figure, "reported", "reported")
        )
    return rows


# ----------------------------------------------------------------------------- emulator capacity


def row_capacity(quick: bool, raw: dict[str, Any]) -> list[Row]:
    seconds = "2" if quick else "3"
    with EmulatorProcess(common.seed(1)) as emulator:
        wide = run_worker("capacity.py", emulator.url, emulator.control_url, "64", seconds)
        single = run_worker("capacity.py", emulator.url, emulator.control_url, "1", seconds)
        emulator.call("set", latency=BULK_LATENCY)
        bulk = run_worker("capacity.py", emulator.url, emulator.control_url, str(BULK_CONCURRENCY), seconds)
    raw["capacity"] = {"64_connections": wide, "1_connection": single, "bulk_setting": bulk}
    needs = {
        # row 5: a thousand polls fall due at once; the budget wants them all answered within 1 s
        "row 5": (TRIGGERS / LATENESS_S, wide["throughput_rps"]),
        # row 4: to meet its budget the emulator must answer 1000 cancels, 16 in flight, in <= 1.875 s
        "row 4": (BULK_COUNT / BULK_BUDGET_S, bulk["throughput_rps"]),
    }
    # Rows 2 and 3 count requests and client CPU: the emulator's speed does not enter their figures.
    raw["capacity"]["needs_rps"] = {row: {"need": n, "serves": s} for row, (n, s) in needs.items()}
    ok = all(serves >= CAPACITY_MARGIN * need for need, serves in needs.values())
    ceiling = BULK_CONCURRENCY / BULK_LATENCY
    figure = (
        f"{wide['throughput_rps']:.0f} req/s (64 conn.); {bulk['throughput_rps']:.0f} req/s at 16 in flight"
        f" +20 ms ({bulk['throughput_rps'] / ceiling:.0%} of the {ceiling:.0f} ceiling);"
        f" {wide['emulator_cpu_per_request_ms']:.2f} ms CPU/request;"
        f" {1000 / single['throughput_rps']:.2f} ms round trip on 1 conn."
    )
    budget = ">= 1.25x need: " + ", ".join(f"{row} {need:.0f}/s" for row, (need, _) in sorted(needs.items()))
    return [Row("C", "emulator capacity (minimal client)", figure, budget, verdict(ok))]


# ----------------------------------------------------------------------------- the run

SECTIONS: list[tuple[str, str, Callable[[bool, dict[str, Any]], list[Row]]]] = [
    ("1", "DAG-parse cost", row_parse_cost),
    ("2", "round trips per cancel", row_round_trips),
    ("3", "client overhead per call", row_client_overhead),
    ("4", "bulk cancel", row_bulk_cancel),
    ("K", "kill switch over a periodic flow", row_kill_switch),
    ("S", "kill switch against a flow's own schedule", row_schedule_race),
    ("5", "deferred waits", row_deferred_waits),
    ("W", "event watchers, own polls and shared", row_event_watchers),
    ("6", "cancel latency after an upstream failure", row_cancel_latency),
    ("C", "emulator capacity", row_capacity),
]


def machine() -> dict[str, Any]:
    cpu_model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return {
        "uname": " ".join(platform.uname()),
        "uname_a": subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip(),
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "apache_airflow": version("apache-airflow"),
        "httpx": version("httpx"),
        "requests": version("requests"),
        "load_average_at_start": os.getloadavg(),
    }


def table(rows: list[Row]) -> str:
    headers = ("#", "what", "figure: median [min-max]", "budget", "verdict")
    cells = [headers, *[(r.number, r.what, r.figure, r.budget, r.verdict) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    lines = ["| # | what | figure: median [min-max] | budget | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.number} | {r.what} | {r.figure} | {r.budget} | **{r.verdict}** |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats, short waits")
    parser.add_argument("--rows", help="comma-separated rows to run, e.g. 1,4,C (default: all)")
    parser.add_argument("--out", type=Path, default=common.OUT_DIR / "results.json")
    args = parser.parse_args()
    wanted = set(args.rows.split(",")) if args.rows else {number for number, _, _ in SECTIONS}

    common.OUT_DIR.mkdir(parents=True, exist_ok=True)
    started, clock = datetime.now(UTC), time.perf_counter()
    info = machine()
    print(f"make bench{' --quick' if args.quick else ''}: {info['cpu_model']}, {info['cores']} cores, "
          f"Python {info['python']}, apache-airflow {info['apache_airflow']}", flush=True)  # fmt: skip
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    durations: dict[str, float] = {}
    for number, title, section in SECTIONS:
        if number not in wanted:
            continue
        print(f"[{time.perf_counter() - clock:6.1f} s] row {number}: {title} ...", flush=True)
        section_started = time.perf_counter()
        try:
            rows.extend(section(args.quick, raw))
        except Exception as err:  # noqa: BLE001 - one broken row must not hide the others
            traceback.print_exc()
            rows.append(Row(number, title, f"could not be measured: {err}"[:200], "-", "ERROR"))
        durations[number] = round(time.perf_counter() - section_started, 1)

    missed = [r for r in rows if r.verdict in ("MISSED", "ERROR")]
    print()
    print(table(rows))
    print()
    total = time.perf_counter() - clock
    print(f"{len(missed)} of {sum(r.verdict != 'reported' for r in rows)} budgets missed; "
          f"{total:.0f} s; results in {args.out}")  # fmt: skip
    document = {
        "quick": args.quick,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(total, 1),
        "section_durations_s": durations,
        "machine": info,
        "rows": [asdict(r) for r in rows],
        "table_markdown": markdown(rows),
        "raw": raw,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, default=str))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
