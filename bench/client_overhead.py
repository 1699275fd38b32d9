"""Row 3: client CPU per cancel call, the hook against a bare ``requests.Session().post``.

Worker: ``python bench/client_overhead.py EMULATOR_URL CONTROL_URL ROUNDS CALLS``. The emulator (in
another process) answers every cancel with code 0 (``cancel_final=success``), so both clients get the
same reply. Token and connection are warm for both before measuring. Rounds alternate which client
goes first; each round gives one ratio (hook CPU / bare CPU for the same number of calls).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from urllib.parse import quote, urlencode

import common

common.use_private_airflow_home()


def main() -> None:
    url, control_url, rounds, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import os

    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(url)
    import requests

    from airflow_enos_provider.hooks.enos import EnOSHook

    ids = common.instance_ids(rounds * calls + 1)
    hook = EnOSHook()
    hook.cancel_flow_instance(ids.pop())  # warm: token, settings, connection

    # The bare client: its own token, then one signed request prepared once and posted again and again.
    bare = requests.Session()
    token_reply = bare.post(f"{url}/apim-token-service/v2.0/token/get", json=common.token_body()).json()
    token = token_reply["data"]["accessToken"]
    query = [("action", "cancel"), ("userId", common.USER_ID), ("orgId", common.ORG_ID)]
    body = json.dumps({"flowInstId": ids[0]}, separators=(",", ":")).encode()
    bare_url = f"{url}/batch-processing-service/v2.1/flowInstances?" + urlencode(query, quote_via=quote)
    headers = {"Content-Type": "application/json;charset=UTF-8", **common.signed_headers(token, query, body)}
    first = bare.post(bare_url, data=body, headers=headers)
    assert first.json()["code"] == 0, first.text

    def run_bare() -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            bare.post(bare_url, data=body, headers=headers).content  # noqa: B018 - read the reply
        return time.process_time() - cpu, time.perf_counter() - wall

    def run_hook() -> tuple[float, float]:
        batch = [ids.pop() for _ in range(calls)]
        cpu, wall = time.process_time(), time.perf_counter()
        for flow_inst_id in batch:
            hook.cancel_flow_instance(flow_inst_id)
        return time.process_time() - cpu, time.perf_counter() - wall

    before = common.control(control_url, "stats")
    results = []
    gc.collect()
    for number in range(rounds):
        order = (("bare", run_bare), ("hook", run_hook))
        if number % 2:
            order = order[::-1]
        measured = {name: run() for name, run in order}
        results.append(
            {
                "bare_cpu_us": measured["bare"][0] / calls * 1e6,
                "hook_cpu_us": measured["hook"][0] / calls * 1e6,
                "bare_wall_us": measured["bare"][1] / calls * 1e6,
                "hook_wall_us": measured["hook"][1] / calls * 1e6,
            }
        )
    after = common.control(control_url, "stats")
    requests_made = common.delta(before["counts"], after["counts"])
    common.emit(
        {
            "rounds": results,
            "calls_per_round": calls,
            "new_connections": after["connections"] - before["connections"],
            "cancels": requests_made.get("flowInstances.cancel", 0),
            "token_requests": requests_made.get("token.get", 0),
            "emulator_cpu_s": after["cpu"] - before["cpu"],
        }
    )


if __name__ == "__main__":
    main()
