"""EnOSCancelFlowInstanceNotifier against the emulator: it cancels, never raises, and runs in a triggerer."""

from __future__ import annotations

import logging

import pytest

from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.notifications.flow_instance import EnOSCancelFlowInstanceNotifier
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env


def test_notifier_cancels_given_ids(enos_conn):
    EnOSCancelFlowInstanceNotifier(flow_inst_id=[env.RUNNING_ID, env.SUCCEEDED_ID]).notify({})
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL
    assert enos_conn.state.instance_status(env.SUCCEEDED_ID) == S.SUCCESS


def test_notifier_never_raises(enos_conn):
    EnOSCancelFlowInstanceNotifier(flow_inst_id="2438-000000000000").notify({})
    EnOSCancelFlowInstanceNotifier(flow_inst_id="None").notify({})
    assert enos_conn.state.count("flowInstances.cancel") == 1


def test_notifier_cancels_on_the_event_loop_for_the_triggerer(enos_conn, caplog, capsys):
    import asyncio

    from tests.operators.test_failure_logs import Said

    notifier = EnOSCancelFlowInstanceNotifier(
        flow_inst_id=[env.RUNNING_ID, env.SUCCEEDED_ID, "2438-000000000000"], max_concurrency=2
    )
    with caplog.at_level(logging.INFO):
        asyncio.run(notifier.async_notify({}))  # never raises, like notify()
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL
    assert enos_conn.state.instance_status(env.SUCCEEDED_ID) == S.SUCCESS
    text = Said(caplog, capsys).text
    assert f"EnOS flow instance {env.RUNNING_ID}: cancelled" in text
    assert f"EnOS flow instance {env.SUCCEEDED_ID}: already_final (status SUCCESS)" in text
    assert "Could not cancel EnOS flow instance 2438-000000000000" in text


def test_notifier_checks_max_concurrency_at_parse_time():
    with pytest.raises(EnOSValidationError, match="max_concurrency must be an integer from 1 to 256"):
        EnOSCancelFlowInstanceNotifier(flow_inst_id="2438-201908081020", max_concurrency=0)
