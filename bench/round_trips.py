"""Row 2: requests the emulator receives for one ``CancelFlowInstanceOperator`` task.

Worker: ``python bench/round_trips.py EMULATOR_URL CONTROL_URL COLD_ID WARM_ID``. In this fresh
process, one operator cancels ``COLD_ID`` (no token yet: what a task process does), then a second
operator cancels ``WARM_ID`` (the token is cached in the process). Both instances are RUNNING, so
both cancels take the success path. The counts come from the emulator, per operation.
"""

from __future__ import annotations

import os
import sys

import common

common.use_private_airflow_home()


def main() -> None:
    url, control_url, cold_id, warm_id = sys.argv[1:5]
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    runs = {}
    for name, flow_inst_id in (("fresh_process", cold_id), ("warm_token", warm_id)):
        before = common.control(control_url, "stats")["counts"]
        result = CancelFlowInstanceOperator(task_id=f"cancel_{name}", flow_inst_id=flow_inst_id).execute({})
        after = common.control(control_url, "stats")["counts"]
        runs[name] = {"requests": common.delta(before, after), "result": result}
    common.emit(runs)


if __name__ == "__main__":
    main()
