"""Row S: the kill switch against a flow the emulator schedules every 100 ms, with and without disable_flow.

Worker: ``python bench/kill_switch_schedule.py EMULATOR_URL CONTROL_URL MODE`` (MODE ``disable`` or
``plain``) runs ``CancelFlowInstanceOperator(flow_id=2438, disable_flow=MODE == "disable")`` in a
fresh process, once the schedule has started 30 instances and while it keeps starting more, and
prints the wall time, the requests the emulator received during the task, and the flow's instances
still active right after it and 1 s later.
"""

from __future__ import annotations

import os
import sys
import time

import common

common.use_private_airflow_home()

BACKLOG = 30  # active instances when the task starts: 3 s of the 100 ms schedule, every run alike
LATER_S = 1.0  # then the flow's active instances once more, this long after the task


def main() -> None:
    url, control_url, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    operator = CancelFlowInstanceOperator(
        task_id="kill_switch", flow_id=common.FLOW_ID, disable_flow=mode == "disable", max_concurrency=16
    )
    backlog = wait_for_backlog(control_url)
    before = common.control(control_url, "stats")
    started = time.perf_counter()
    result = operator.execute({})
    wall = time.perf_counter() - started
    left = common.control(control_url, "active", flow_id=common.FLOW_ID)  # right after the task
    after = common.control(control_url, "stats")
    time.sleep(LATER_S)
    later = common.control(control_url, "active", flow_id=common.FLOW_ID)
    instances = result["instances"] if mode == "disable" else result
    common.emit(
        {
            "mode": mode,
            "wall_s": wall,
            "requests": common.delta(before["counts"], after["counts"]),
            "cancelled": sum(1 for r in instances.values() if r["outcome"] == "cancelled"),
            "schedule": result.get("schedule") if mode == "disable" else None,
            "backlog": backlog,
            "active_left": left["active"],
            "active_1s_later": later["active"],
            "instances": left["instances"],
        }
    )


def wait_for_backlog(control_url: str) -> int:
    """Wait (30 s at most) until the schedule has started BACKLOG instances; return how many it has."""
    deadline = time.monotonic() + 30
    while True:
        active = common.control(control_url, "active", flow_id=common.FLOW_ID)["active"]
        if active >= BACKLOG or time.monotonic() > deadline:
            return int(active)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
