"""The event watcher's search: newest end first, pages read only down to the horizon, none trusted blindly."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import pytest

from airflow_enos_provider.exceptions import EnOSAPIError
from airflow_enos_provider.hooks.enos import EnOSHook
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests.hostile_gateway import Reply, envelope, with_token

FLOW = 5101
GMT8 = timezone(timedelta(hours=8))  # the zone the scripted gateway says it writes in


def ended(hook: EnOSHook, since_ms: int, zone: timezone = UTC, flow: int = FLOW, types=(0,)):
    # The zone is the one the gateway writes in: the emulator's UTC, or a scripted gateway's GMT+8.
    return env.run_async(hook._aended_instances(flow, types, [S.SUCCESS], since_ms, zone, None, None))


def test_pages_are_read_only_down_to_the_horizon(enos_conn):
    state = enos_conn.state
    state.add_flow(FLOW, owner=env.USER_ID)
    start = state.now()
    for n in range(1, 251):  # one instance ending each second
        state.schedule_instance(f"{FLOW}-2026120{n:05d}", FLOW, start + n)
    state.advance(300)
    hook = EnOSHook()

    def searched(since_ms: int) -> tuple[set[int], int]:
        before = state.count("flowInstances.search")
        found, in_order = ended(hook, since_ms)
        assert in_order
        return {int(e.flow_inst_id[-5:]) for e in found}, state.count("flowInstances.search") - before

    at = int(start) * 1000  # end times are whole seconds
    assert searched(at + 250_001) == (set(), 1)  # the first page is already older
    assert searched(at + 200_000) == (set(range(200, 251)), 1)
    assert searched(at + 120_000) == (set(range(120, 251)), 2)
    assert searched(at) == (set(range(1, 251)), 3)  # the third page is short: the end


def _listing(pages: list[list[dict]]):
    def script(seen):
        page_no = seen.json()["pagination"]["pageNo"]
        page = pages[page_no - 1] if page_no <= len(pages) else []
        return Reply(body=envelope({"flowInsts": page, "count": sum(map(len, pages))}))

    return script


def _instance(n: int, end: str | None) -> dict:
    return {"instanceId": f"{FLOW}-2026120400{n:02d}", "flowId": FLOW, "status": 1, "endTime": end}


def test_a_gateway_that_ignores_the_sort_gets_every_page_read(gateway):
    # Oldest first although newest first was asked: stopping at the first old instance would miss
    # the newer ones on the next page.
    old = [_instance(n, f"2026-12-01 00:{n // 60:02d}:{n % 60:02d}") for n in range(100)]
    new = [_instance(99, "2026-12-04 08:00:00")]
    new[0]["instanceId"] = f"{FLOW}-20261204999"
    server = gateway(with_token(_listing([old, new])))
    since = 1_796_342_400_000  # 2026-12-04 00:00 UTC = 08:00 in GMT+8
    found, in_order = ended(EnOSHook(), since, GMT8)
    assert not in_order
    assert [e.flow_inst_id for e in found] == [f"{FLOW}-20261204999"]
    assert found[0].end_ms == since  # endTime read in the tenant's zone
    assert server.count("search") == 2


def test_a_final_instance_without_an_end_time_is_a_malformed_reply(gateway):
    gateway(with_token(_listing([[_instance(1, None)]])))
    with pytest.raises(EnOSAPIError, match="no readable endTime"):
        ended(EnOSHook(), 0, GMT8)
