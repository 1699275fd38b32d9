"""Cancel Flow Instance against the emulator over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import FLOW, SEEDED, Client, make_seed

# --------------------------------------------------------------------------- cancel


def test_cancel_running_instance(client: Client, emulator: EnOSEmulator) -> None:
    assert client.ok("POST", "flowInstances", "cancel", {"flowInstId": SEEDED}) == ""
    assert emulator.state.instance_status(SEEDED) == 8
    inst = client.instance(SEEDED)
    assert (inst["status"], inst["statusDesc"]) == (8, "CANCEL")
    assert inst["endTime"] != ""
    listed = client.search(expression=SEEDED)["flowInsts"]
    assert [(i["instanceId"], i["isCancelled"]) for i in listed] == [(SEEDED, True)]


def test_cancel_errors(client: Client, emulator: EnOSEmulator) -> None:
    assert client.error("POST", "flowInstances", "cancel", {"flowInstId": "nope"}) == (
        62102,
        "Instance not found",
    )
    assert client.error("POST", "flowInstances", "cancel", {})[0] == 62102
    not_owner = client.error("POST", "flowInstances", "cancel", {"flowInstId": SEEDED}, user="u-other")
    assert not_owner == (62103, "User has no privilege")
    emulator.state.set_flow_locked(FLOW, True)
    assert client.error("POST", "flowInstances", "cancel", {"flowInstId": SEEDED}) == (
        62105,
        "Workflow is locked",
    )
    emulator.state.set_flow_locked(FLOW, False)
    assert emulator.state.instance_status(SEEDED) == 2


@pytest.mark.parametrize("final", ["SUCCESS", "FAIL", "CANCEL", 7])
def test_cancel_finished_instance_with_cancel_final_error(
    client: Client, emulator: EnOSEmulator, final: Any
) -> None:
    emulator.state.set_instance_status(SEEDED, final)
    before = emulator.state.instance_status(SEEDED)
    code, msg = client.error("POST", "flowInstances", "cancel", {"flowInstId": SEEDED})
    assert (code, msg) == (62102, "Instance is already finished")
    assert emulator.state.instance_status(SEEDED) == before


def test_cancel_finished_instance_with_cancel_final_success(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.cancel_final = "success"
    emulator.state.set_instance_status(SEEDED, "FAIL")
    assert client.ok("POST", "flowInstances", "cancel", {"flowInstId": SEEDED}) == ""
    assert emulator.state.instance_status(SEEDED) == -1
    with pytest.raises(ValueError):
        emulator.state.cancel_final = "maybe"


def test_cancel_final_from_constructor_and_seed() -> None:
    seed = make_seed()
    seed["settings"] = {"cancel_final": "success", "token_ttl": 60}
    assert EnOSEmulator(seed).state.cancel_final == "success"
    assert EnOSEmulator(seed).state.token_ttl == 60
    # A keyword that differs from its default wins over the seed.
    assert EnOSEmulator(seed, token_ttl=30).state.token_ttl == 30
    assert EnOSEmulator(make_seed(), cancel_final="success").state.cancel_final == "success"
    with pytest.raises(ValueError):
        EnOSEmulator(make_seed(), cancel_final="ignore")
