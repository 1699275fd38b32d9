"""Row 5: 1,000 flow-instance triggers waiting at once in one triggerer-style event loop.

Worker: ``python bench/deferred_waits.py EMULATOR_URL CONTROL_URL COUNT SECONDS POLL_INTERVAL MODE``.
Every trigger waits for one RUNNING instance (seeded without a schedule, so it stays RUNNING) and runs
as the triggerer runs it: an asyncio task iterating ``trigger.run()``, all in one event loop. MODE:

- ``run``: measure CPU per poll (this process's CPU time over the window / polls the emulator
  answered in it), RSS growth per trigger, event-loop lag, and each poll's lateness. Lateness is
  measured at the emulator: poll 1 of a trigger is due when the trigger starts; poll k is due
  ``POLL_INTERVAL`` after the emulator wrote the reply to poll k-1 (the trigger sleeps that long after
  reading it), so lateness = arrival of poll k - due time, whatever delays it on the client side
  (event loop, connection pool, signing, parsing).
- ``tracemalloc``: the Python memory held per waiting trigger after the first poll round, with the
  allocation sites that hold the most.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import sys
import time
import tracemalloc
from typing import Any

import common

common.use_private_airflow_home()

GET = "flowInstances.get"


async def _consume(trigger: Any) -> None:
    async for _event in trigger.run():
        return  # the instances stay RUNNING: no event is expected during the run


async def _lag_monitor(samples: list[tuple[float, float, float]], period: float = 0.1) -> None:
    # (wall time, how late the loop woke us, process CPU seconds): loop lag and CPU over time.
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        samples.append((time.time(), loop.time() - due, time.process_time()))


async def run(url: str, control_url: str, ids: list[str], seconds: float, interval: float, mode: str) -> dict:
    from airflow_enos_provider._transports.aio import aclose_clients as aclose_async_clients
    from airflow_enos_provider.hooks.enos import EnOSHook
    from airflow_enos_provider.triggers.flow_instance import EnOSFlowInstanceTrigger

    # Warm-up with an id the triggers do not wait for: the shared client, the token, one connection.
    await EnOSHook().aget_flow_instance(ids[-1])
    ids = ids[:-1]
    before = common.control(control_url, "stats")
    samples: list[tuple[float, float, float]] = []
    monitor = asyncio.create_task(_lag_monitor(samples))
    await asyncio.sleep(0.3)
    if mode == "tracemalloc":
        tracemalloc.start(1)
    rss_before = common.rss_kb()
    traced_before = tracemalloc.get_traced_memory()[0] if mode == "tracemalloc" else 0
    cpu_start, t_start = time.process_time(), time.time()
    triggers = [
        EnOSFlowInstanceTrigger([i], enos_conn_id="enos_default", poll_interval=interval) for i in ids
    ]
    tasks = [asyncio.create_task(_consume(t)) for t in triggers]
    if mode == "tracemalloc":
        # Wait until every trigger has read its instance once and sleeps until its next poll.
        gets = before["counts"].get(GET, 0) + len(ids)
        while common.control(control_url, "stats")["counts"].get(GET, 0) < gets:
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
    else:
        await asyncio.sleep(seconds)
    cpu_end, t_end = time.process_time(), time.time()
    rss_after = common.rss_kb()
    result: dict[str, Any] = {"triggers": len(ids), "seconds": seconds, "poll_interval": interval}
    if mode == "tracemalloc":
        traced = tracemalloc.get_traced_memory()[0] - traced_before
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        )
        top = snapshot.statistics("lineno")[:8]
        tracemalloc.stop()
        result["traced_bytes_per_trigger"] = traced / len(ids)
        result["top_sites"] = [
            {"site": f"{s.traceback[0].filename}:{s.traceback[0].lineno}", "kb": round(s.size / 1024, 1)}
            for s in top
        ]
    finished = [t for t in tasks if t.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    monitor.cancel()
    await aclose_async_clients()
    after = common.control(control_url, "stats")

    timings = common.control(control_url, "timings", operation=GET)["timings"]
    wanted = set(ids)
    per_instance: dict[str, list[tuple[float, float]]] = {}
    for _op, flow_inst_id, arrived, done in timings:
        if flow_inst_id in wanted and t_start <= arrived <= t_end:
            per_instance.setdefault(flow_inst_id, []).append((arrived, done))
    lateness_first, lateness_later = [], []
    for polls in per_instance.values():
        polls.sort()
        lateness_first.append(polls[0][0] - t_start)
        lateness_later.extend(
            arrived - (prev_done + interval) for (_, prev_done), (arrived, _) in itertools.pairwise(polls)
        )
    answered = [done for polls in per_instance.values() for _, done in polls if done <= t_end]
    polls_total = len(answered)
    steady_from = t_start + min(interval / 2, seconds / 2)
    steady_polls = sum(1 for done in answered if done >= steady_from)
    steady_samples = [s for s in samples if s[0] >= steady_from]
    steady_cpu = (cpu_end - steady_samples[0][2]) if steady_samples else float("nan")
    arrivals = sorted(a for polls in per_instance.values() for a, _ in polls)
    # the most polls arriving within any one second
    peak_rate = max((bisect.bisect_left(arrivals, a + 1.0) - i for i, a in enumerate(arrivals)), default=0)
    result.update(
        {
            "polls_answered": polls_total,
            "rounds": polls_total / max(len(ids), 1),
            "instances_polled": len(per_instance),
            "events_fired": len(finished),
            "cpu_s": cpu_end - cpu_start,
            "cpu_per_poll_ms": (cpu_end - cpu_start) / max(polls_total, 1) * 1000,
            "steady_cpu_per_poll_ms": steady_cpu / max(steady_polls, 1) * 1000,
            "steady_polls": steady_polls,
            "rss_per_trigger_kb": (rss_after - rss_before) / len(ids),
            "lateness_first_s": lateness_first,
            "lateness_later_s": lateness_later,
            "loop_lag_max_s": max((lag for _, lag, _ in samples), default=0.0),
            "loop_lag_p99_s": common.percentile([lag for _, lag, _ in samples], 99),
            "peak_polls_per_s": peak_rate,
            "token_requests": common.delta(before["counts"], after["counts"]).get("token.get", 0),
            "connections_opened": after["connections"] - before["connections"],
            "emulator_cpu_s": after["cpu"] - before["cpu"],
            "emulator_threads": after["threads"],
            "statuses": common.control(control_url, "statuses", ids=ids)["statuses"],
        }
    )
    return result


def main() -> None:
    url, control_url = sys.argv[1], sys.argv[2]
    count, seconds, interval, mode = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    ids = common.instance_ids(count + 1)
    common.emit(asyncio.run(run(url, control_url, ids, seconds, interval, mode)))


if __name__ == "__main__":
    main()
