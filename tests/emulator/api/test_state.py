"""The emulator's state API and seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_enos_provider.emulator import EmulatorState, EnOSEmulator, ManualClock
from airflow_enos_provider.emulator.tasks import format_time
from tests.emulator.api.client import REPO_ROOT, USER, Client, make_seed

# --------------------------------------------------------------------------- state API


def test_state_hooks_and_seed_file(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(make_seed()), encoding="utf-8")
    clock = ManualClock(start=1_700_000_000)
    emulator = EnOSEmulator(seed_file, clock=clock)
    state = emulator.state
    assert isinstance(state, EmulatorState)
    assert state.now_ms() == 1_700_000_000_000
    assert state.advance(1) == 1_700_000_001
    assert state.instance_status("77-done") == 1
    assert state.instance("77-done")["owner"] == "u-other"  # defaults to the flow's owner
    assert state.add_instance("77-x", 77, status=5, owner=USER) == "77-x"
    assert state.instance("77-x")["statusDesc"] == "WAIT"
    state.set_instance_status("77-x", "running")
    assert state.instance_status("77-x") == 2
    with pytest.raises(ValueError):
        state.add_instance("77-x", 77)
    with pytest.raises(ValueError):
        state.add_instance("1-y", 1)
    with pytest.raises(ValueError):
        state.set_instance_status("77-x", "DANCING")
    with pytest.raises(ValueError):
        EnOSEmulator({"flows": [{"flow_id": 1, "colour": "red"}]})
    with pytest.raises(ValueError):
        EnOSEmulator({"users": [{"user_id": "u"}]})
    with pytest.raises(RuntimeError):
        EnOSEmulator().state.advance(1)
    assert EnOSEmulator(clock=lambda: 42.0).state.now_ms() == 42_000
    with pytest.raises(RuntimeError):
        _ = EnOSEmulator().url


def test_existing_seeds_load_and_new_seed_fields_are_checked() -> None:
    import importlib.util

    from airflow_enos_provider.emulator.seed import DEMO_SEED
    from tests.enos_env import SEED

    spec = importlib.util.spec_from_file_location("bench_common", REPO_ROOT / "bench" / "common.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for seed in (SEED, DEMO_SEED, bench.seed(3)):
        state = EnOSEmulator(seed).state
        flow = state.flow(2438)
        assert flow["type"] == 0 and flow["parameters"] == "[]"  # the defaults
        assert all(t["taskId"].isdigit() for t in json.loads(flow["graph"])["tasks"])
    with pytest.raises(ValueError, match="unknown key"):
        EnOSEmulator({"flows": [{"flow_id": 1, "tasks": [{"name": "a", "colour": "red"}]}]})
    with pytest.raises(ValueError, match="already exist"):
        EnOSEmulator(
            {"flows": [{"flow_id": 1, "tasks": [{"name": "a", "id": "7"}, {"name": "b", "id": "7"}]}]}
        )
    with pytest.raises(ValueError, match="key, value"):
        EnOSEmulator({"flows": [{"flow_id": 1, "parameters": [{"k": "v"}]}]})
    with pytest.raises(ValueError):
        EnOSEmulator({"flows": [{"flow_id": 1, "type": 7}]})


def test_a_flow_without_tasks_cannot_be_triggered(client: Client, emulator: EnOSEmulator) -> None:
    # trigger_flow.md's error table: 62104 "This workflow has no task. You cannot trigger it."
    emulator.state.add_flow(60, owner=USER, tasks=[])
    assert client.error(
        "POST", "flows", "trigger", {"flowId": 60, "triggerTime": emulator.state.now_ms()}
    ) == (
        62104,
        "This workflow has no task. You cannot trigger it.",
    )


def test_status_and_code_constants_are_the_enums() -> None:
    from airflow_enos_provider import emulator as emulator_package
    from airflow_enos_provider._protocol.codes import EnOSCode
    from airflow_enos_provider.emulator import (
        ACTIVE_STATUSES,
        FINAL_STATUSES,
        STATUS_CODES,
        STATUS_NAMES,
        state,
    )
    from airflow_enos_provider.emulator.auth import EXPIRED
    from airflow_enos_provider.emulator.faults import FaultKind
    from airflow_enos_provider.status import EnOSFlowInstanceStatus

    assert {s.value: s.name for s in EnOSFlowInstanceStatus} == STATUS_NAMES
    assert {s.name: s.value for s in EnOSFlowInstanceStatus} == STATUS_CODES
    assert {s.value for s in EnOSFlowInstanceStatus.final_statuses()} == FINAL_STATUSES
    assert {s.value for s in EnOSFlowInstanceStatus.active_statuses()} == ACTIVE_STATUSES
    assert all(type(code) is int for code in (*STATUS_NAMES, *FINAL_STATUSES, *ACTIVE_STATUSES))
    assert isinstance(FINAL_STATUSES, frozenset) and isinstance(ACTIVE_STATUSES, frozenset)
    assert EXPIRED["code"] == EnOSCode.TOKEN_EXPIRED
    assert state.EmulatorState is emulator_package.EmulatorState
    # Fault names are mapped to the enum at the border; an unknown one is refused there.
    fault = EmulatorState().inject("reset_after", "flowInstances.cancel")
    assert fault.kind is FaultKind.RESET_AFTER
    with pytest.raises(ValueError, match="unknown fault 'bogus'"):
        EmulatorState().inject("bogus")


def test_a_scheduled_instance_ends_at_its_clock_time_and_lists_by_end(
    client: Client, emulator: EnOSEmulator
) -> None:
    # The watcher's test hook: instances of one flow that end in any order, or show up already ended.
    state = emulator.state
    now = state.now()
    state.add_flow(61, owner=USER)
    state.schedule_instance("61-202612040001", 61, now + 20)
    state.schedule_instance("61-202612040002", 61, now + 10, end_status="FAIL")
    assert client.instance("61-202612040001")["statusDesc"] == "RUNNING"
    state.advance(30)
    state.schedule_instance("61-202612040003", 61, now + 5)  # added after it ended: ended at once
    done = client.instance("61-202612040001")
    assert done["statusDesc"] == "SUCCESS" and done["endTime"] == format_time(now + 20)
    # list_flow_instances.md: status filter (codes) and sorters on endTime
    found = client.search(
        expression="61-",
        status="1",
        pagination={"pageNo": 1, "pageSize": 10, "sorters": [{"field": "endTime", "order": "DESC"}]},
    )
    assert [i["instanceId"] for i in found["flowInsts"]] == ["61-202612040001", "61-202612040003"]
    with pytest.raises(ValueError, match="not a final status"):
        state.schedule_instance("61-202612040004", 61, now + 40, end_status="RUNNING")
