"""Row W: 100 event watchers of 10 flows in one triggerer-style event loop, each on its own poll or shared.

Worker: ``python bench/event_watchers.py EMULATOR_URL CONTROL_URL MODE SECONDS POLL_INTERVAL``. Each
of the 10 flows of ``common.event_seed()`` has 3 instances that ended before the watchers start, so
every poll lists and filters them and announces nothing. MODE:

- ``own``: every watcher runs ``trigger.run()`` as a task, its own poll (Airflow 3.0-3.2);
- ``shared``: the watchers subscribe to Airflow 3.3's ``SharedStreamManager`` as the triggerer
  subscribes them (ack mode, one group per flow) and run ``filter_shared_stream``.

After one poll interval of start-up (token, Get Timezone, Get Flow), it measures, over SECONDS, this
process's CPU time and the requests the emulator answered; a poll round is POLL_INTERVAL seconds.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import common

common.use_private_airflow_home()

FLOWS = common.EVENT_FLOWS
WATCHERS_PER_FLOW = 10
STATUS_SETS = (["SUCCESS"], ["FAIL"], ["SUCCESS", "FAIL"], ["CANCEL"], ["SUCCESS", "SKIP"])


async def _drain(events: Any) -> None:
    async for _event in events:
        pass  # nothing ends during the run: no event is expected


async def run(control_url: str, mode: str, seconds: float, interval: float) -> dict[str, Any]:
    from airflow_enos_provider._transports.aio import aclose_clients, clients_lease
    from airflow_enos_provider.triggers.flow_instance_event import EnOSFlowInstanceEventTrigger

    triggers = [
        EnOSFlowInstanceEventTrigger(
            flow_id=flow, statuses=STATUS_SETS[n % len(STATUS_SETS)], poll_interval=interval
        )
        for flow in FLOWS
        for n in range(WATCHERS_PER_FLOW)
    ]
    manager = None
    async with clients_lease():
        if mode == "shared":
            from airflow.triggers.shared_stream import SharedStreamManager

            manager = SharedStreamManager()
            streams = [
                t.filter_shared_stream(manager.subscribe(trigger_id=n, trigger=t, key=t.shared_stream_key()))
                for n, t in enumerate(triggers)
            ]
        else:
            streams = [t.run() for t in triggers]
        tasks = [asyncio.create_task(_drain(s)) for s in streams]
        await asyncio.sleep(interval * 1.5)  # start-up: token, zone, Get Flow, the first poll round
        before = common.control(control_url, "stats")
        cpu_start, t_start = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu_start, time.monotonic() - t_start
        after = common.control(control_url, "stats")
        failed = [t for t in tasks if t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if manager is not None:
            await manager.stop_all()
    await aclose_clients()
    if failed:
        raise RuntimeError(f"{len(failed)} watcher(s) stopped: {failed[0].exception()!r}")
    counts = common.delta(before["counts"], after["counts"])
    rounds = wall / interval
    return {
        "mode": mode,
        "watchers": len(triggers),
        "flows": len(FLOWS),
        "seconds": wall,
        "poll_interval": interval,
        "rounds": rounds,
        "requests": counts,
        "requests_per_round": sum(counts.values()) / rounds,
        "searches_per_round": counts.get("flowInstances.search", 0) / rounds,
        "cpu_s": cpu,
        "cpu_per_round_ms": cpu / rounds * 1000,
    }


def main() -> None:
    url, control_url, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds, interval = float(sys.argv[4]), float(sys.argv[5])
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    common.emit(asyncio.run(run(control_url, mode, seconds, interval)))


if __name__ == "__main__":
    main()
