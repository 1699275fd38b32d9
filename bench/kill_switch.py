"""Row K: the kill switch over the active instances of one periodic flow, 20 ms per request.

Worker: ``python bench/kill_switch.py EMULATOR_URL CONTROL_URL PREFIX COUNT`` runs
``CancelFlowInstanceOperator(flow_id=2438, max_concurrency=16).execute({})`` in a fresh process (the
token request, Get Flow for the flow's scheduling type, the search pages and the cancels) and prints
the wall time, the requests the emulator received, and the instances' statuses afterwards.
"""

from __future__ import annotations

import os
import sys
import time

import common

common.use_private_airflow_home()


def main() -> None:
    url, control_url, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    operator = CancelFlowInstanceOperator(task_id="kill_switch", flow_id=common.FLOW_ID, max_concurrency=16)
    before = common.control(control_url, "stats")
    started = time.perf_counter()
    result = operator.execute({})
    wall = time.perf_counter() - started
    after = common.control(control_url, "stats")
    ids = common.instance_ids(count, prefix)
    common.emit(
        {
            "wall_s": wall,
            "requests": common.delta(before["counts"], after["counts"]),
            "cancelled": sum(1 for r in result.values() if r["outcome"] == "cancelled"),
            "statuses": common.control(control_url, "statuses", ids=ids)["statuses"],
        }
    )


if __name__ == "__main__":
    main()
