"""EnOSHook.disable_flow / enable_flow / is_flow_active against the emulator: idempotent, and honest."""

from __future__ import annotations

import pytest

from airflow_enos_provider.exceptions import EnOSAPIError, EnOSValidationError
from tests import enos_env as env
from tests._protocol.test_protocol import batch_reply, scripted_hook

SCHEDULE_CALLS = ("flows.disable", "flows.enable")


def calls(emulator) -> list[str]:
    return [r.operation for r in emulator.state.requests if r.operation != "token.get"]


def test_disable_reads_then_disables(hook, emulator):
    result = hook.disable_flow(env.FLOW_ID)
    assert result == {"flow_id": env.FLOW_ID, "was_active": True, "active": False, "changed": True}
    assert calls(emulator) == ["flows.get", "flows.disable"]
    (request,) = [r for r in emulator.state.requests if r.operation == "flows.disable"]
    assert request.body == {"flowId": env.FLOW_ID}
    assert request.query == {"action": "disable", "userId": env.USER_ID, "orgId": env.ORG_ID}
    assert emulator.state.flow(env.FLOW_ID)["active"] == 0
    assert hook.is_flow_active(env.FLOW_ID) is False


def test_disable_of_a_disabled_flow_sends_no_disable(hook, emulator):
    emulator.state.set_flow_active(env.FLOW_ID, False)
    result = hook.disable_flow(str(env.FLOW_ID))
    assert result == {"flow_id": env.FLOW_ID, "was_active": False, "active": False, "changed": False}
    assert calls(emulator) == ["flows.get"]


def test_enable_starts_a_stopped_schedule_and_leaves_a_started_one(hook, emulator):
    emulator.state.set_flow_active(env.FLOW_ID, False)
    assert hook.enable_flow(env.FLOW_ID)["changed"] is True
    assert emulator.state.flow(env.FLOW_ID)["active"] == 1
    emulator.state.clear_requests()
    assert hook.enable_flow(env.FLOW_ID) == {
        "flow_id": env.FLOW_ID,
        "was_active": True,
        "active": True,
        "changed": False,
    }
    assert calls(emulator) == ["flows.get"]


def test_not_the_owner_is_refused_with_a_hint(hook, emulator):
    with pytest.raises(EnOSAPIError) as caught:
        hook.disable_flow(env.FLOW_ID, user_id=env.OTHER_USER_ID)
    assert caught.value.code == 62103
    assert "only its owner can stop or start its schedule" in str(caught.value)
    assert emulator.state.flow(env.FLOW_ID)["active"] == 1
    assert emulator.state.count("flows.get") == 1  # a refusal that a read cannot change: no second read


def test_a_locked_flow_is_refused(hook, emulator):
    with pytest.raises(EnOSAPIError) as caught:
        hook.disable_flow(env.LOCKED_FLOW_ID)
    assert caught.value.code == 62105
    assert emulator.state.flow(env.LOCKED_FLOW_ID)["active"] == 1


def test_a_locked_user_is_refused(hook, emulator):
    with pytest.raises(EnOSAPIError) as caught:
        hook.enable_flow(env.FLOW_ID, user_id=env.LOCKED_USER_ID)
    assert caught.value.code == 62105


@pytest.mark.parametrize("repeat", ["success", "error"])
def test_another_client_disabling_between_the_read_and_the_call(hook, emulator, repeat):
    # Whatever EnOS answers a repeat (undocumented), the result is what a reply or a read proves.
    emulator.state.schedule_repeat = repeat
    emulator.state.after("flows.get", lambda: emulator.state.set_flow_active(env.FLOW_ID, False))
    result = hook.disable_flow(env.FLOW_ID)
    assert result["was_active"] is True and result["active"] is False
    assert result["changed"] is (repeat == "success")  # changed: only after a code-0 disable reply
    assert emulator.state.flow(env.FLOW_ID)["active"] == 0
    assert emulator.state.count("flows.get") == (1 if repeat == "success" else 2)


@pytest.mark.parametrize("repeat", ["success", "error"])
def test_a_lost_reply_is_repeated_and_the_outcome_read(hook, emulator, repeat):
    emulator.state.schedule_repeat = repeat
    emulator.state.inject("reset_after", "flows.disable", times=1)
    result = hook.disable_flow(env.FLOW_ID)
    assert (result["was_active"], result["active"]) == (True, False)
    assert emulator.state.count("flows.disable") == 2
    assert emulator.state.flow(env.FLOW_ID)["active"] == 0


def test_a_refusal_that_the_read_does_not_explain_stands(hook, emulator):
    from airflow_enos_provider.emulator.faults import UNDOCUMENTED_CODE

    emulator.state.inject("unknown_code", "flows.disable", times=1)
    with pytest.raises(EnOSAPIError) as caught:
        hook.disable_flow(env.FLOW_ID)
    assert caught.value.code == UNDOCUMENTED_CODE
    assert emulator.state.count("flows.get") == 2  # read again: still started, so the refusal stands
    assert emulator.state.flow(env.FLOW_ID)["active"] == 1


def test_an_unknown_flow(hook, emulator):
    with pytest.raises(EnOSAPIError, match="check the flow id"):
        hook.disable_flow(999)
    assert calls(emulator) == ["flows.get"]


@pytest.mark.parametrize("flow_id", [None, "", "abc", -1, True, 1.5])
def test_bad_flow_id_fails_before_any_request(hook, emulator, flow_id):
    with pytest.raises(EnOSValidationError, match="flow_id"):
        hook.disable_flow(flow_id)
    assert emulator.state.requests == []


@pytest.mark.parametrize("active", [None, 2, "yes", 1.0, [1]])
def test_a_reply_without_a_readable_active_is_a_typed_error(monkeypatch, active):
    hook, transport, _ = scripted_hook(monkeypatch, [batch_reply({"flowId": 7, "active": active})])
    with pytest.raises(EnOSAPIError, match="no schedule state"):
        hook.disable_flow(7)
    assert [r.operation for r in transport.sent] == ["get_flow"]


def test_digit_string_active_is_read(monkeypatch):
    hook, transport, _ = scripted_hook(monkeypatch, [batch_reply({"flowId": 7, "active": "0"})])
    assert hook.disable_flow(7)["changed"] is False
    assert len(transport.sent) == 1
