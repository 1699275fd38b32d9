"""Row 4: cancel 1,000 RUNNING instances, emulator adding 20 ms per request.

Worker: ``python bench/bulk_cancel.py EMULATOR_URL CONTROL_URL MODE PREFIX COUNT`` where MODE is

- ``operator``: ``CancelFlowInstanceOperator(flow_inst_id=ids, max_concurrency=16).execute({})``,
  what a DAG runs (a fresh process: the token request is included);
- ``hook``: ``EnOSHook().cancel_flow_instances(ids, max_concurrency=16)``;
- ``sequential``: what the vendor's Python SDK does, one signed ``requests.post`` per instance, each on
  a new connection, one after the other (its one token request is made before the clock starts).

Prints the wall time and what the emulator received meanwhile.
"""

from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import quote, urlencode

import common

common.use_private_airflow_home()


def sequential(url: str, ids: list[str]) -> float:
    import requests

    token = requests.post(
        f"{url}/apim-token-service/v2.0/token/get", json=common.token_body(), timeout=30
    ).json()["data"]["accessToken"]
    query = [("action", "cancel"), ("userId", common.USER_ID), ("orgId", common.ORG_ID)]
    target = f"{url}/batch-processing-service/v2.1/flowInstances?" + urlencode(query, quote_via=quote)
    started = time.perf_counter()
    for flow_inst_id in ids:
        body = json.dumps({"flowInstId": flow_inst_id}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            **common.signed_headers(token, query, body),
        }
        reply = requests.post(target, data=body, headers=headers, timeout=30)  # a new connection each time
        if reply.json()["code"] != 0:
            raise RuntimeError(f"cancel of {flow_inst_id} refused: {reply.text}")
    return time.perf_counter() - started


def main() -> None:
    url, control_url, mode, prefix, count = (
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        sys.argv[4],
        int(sys.argv[5]),
    )
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    ids = common.instance_ids(count, prefix)
    from airflow_enos_provider.hooks.enos import EnOSHook
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    before = common.control(control_url, "stats")
    cpu = time.process_time()
    if mode == "operator":
        operator = CancelFlowInstanceOperator(task_id="cancel_all", flow_inst_id=ids, max_concurrency=16)
        started = time.perf_counter()
        result = operator.execute({})
        wall = time.perf_counter() - started
        outcomes = {r["outcome"] for r in result.values()}
    elif mode == "hook":
        hook = EnOSHook()
        started = time.perf_counter()
        result = hook.cancel_flow_instances(ids, max_concurrency=16)
        wall = time.perf_counter() - started
        outcomes = {r["outcome"] if isinstance(r, dict) else repr(r) for r in result.values()}
        hook.close()
    else:
        wall = sequential(url, ids)
        outcomes = {"cancelled"}
    cpu = time.process_time() - cpu
    after = common.control(control_url, "stats")
    common.emit(
        {
            "mode": mode,
            "wall_s": wall,
            "client_cpu_s": cpu,
            "emulator_cpu_s": after["cpu"] - before["cpu"],
            "requests": common.delta(before["counts"], after["counts"]),
            "new_connections": after["connections"] - before["connections"],
            "outcomes": sorted(outcomes),
            "statuses": common.control(control_url, "statuses", ids=ids)["statuses"],
        }
    )


if __name__ == "__main__":
    main()
