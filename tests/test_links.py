"""The console link: each task pushes its instance's console URL; a link that cannot be made warns."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from airflow_enos_provider.links import CONSOLE_URL_XCOM_KEY
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor
from tests import enos_env as env
from tests.operators.test_failure_logs import Said


def test_each_task_pushes_the_console_url_of_its_instance(enos_conn, monkeypatch):
    with_console_url(
        monkeypatch, enos_conn, "https://console.example/{org_id}/flows/{flow_id}/{flow_inst_id}"
    )
    ti, pushed = pushing_ti()
    started = EnOSTriggerFlowOperator(
        task_id="t", flow_id=env.IDLE_FLOW_ID, wait_for_completion=False
    ).execute({"ti": ti})
    assert (
        pushed[CONSOLE_URL_XCOM_KEY]
        == f"https://console.example/{env.ORG_ID}/flows/{env.IDLE_FLOW_ID}/{started}"
    )
    # The sensor and the cancel operator do not know the flow: the instance is read for it.
    ti, pushed = pushing_ti()
    EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.SUCCEEDED_ID).execute({"ti": ti})
    assert (
        pushed[CONSOLE_URL_XCOM_KEY]
        == f"https://console.example/{env.ORG_ID}/flows/{env.FLOW_ID}/{env.SUCCEEDED_ID}"
    )
    ti, pushed = pushing_ti()
    CancelFlowInstanceOperator(task_id="c", flow_inst_id=[env.RUNNING_ID]).execute({"ti": ti})
    assert (
        pushed[CONSOLE_URL_XCOM_KEY]
        == f"https://console.example/{env.ORG_ID}/flows/{env.FLOW_ID}/{env.RUNNING_ID}"
    )


def test_no_console_url_no_link_and_none_for_several_ids(enos_conn, monkeypatch):
    ti, pushed = pushing_ti()
    EnOSTriggerFlowOperator(task_id="t", flow_id=env.IDLE_FLOW_ID, wait_for_completion=False).execute(
        {"ti": ti}
    )
    assert CONSOLE_URL_XCOM_KEY not in pushed
    with_console_url(monkeypatch, enos_conn, "https://console.example/{flow_inst_id}")
    second = enos_conn.state.add_instance("2438-201908091020", env.FLOW_ID, status="WAIT")
    ti, pushed = pushing_ti()
    CancelFlowInstanceOperator(task_id="c", flow_inst_id=[env.RUNNING_ID, second]).execute({"ti": ti})
    assert CONSOLE_URL_XCOM_KEY not in pushed


def test_a_link_that_cannot_be_made_is_a_warning_not_a_failure(enos_conn, monkeypatch, caplog, capsys):
    with_console_url(monkeypatch, enos_conn, "https://console.example/{flow_id}/{flow_inst_id}")
    enos_conn.state.set_instance_status(env.RUNNING_ID, "SUCCESS")
    # The link's read of the instance (for {flow_id}) is not retried; the sensor's own read is.
    enos_conn.state.inject("http_5xx", "flowInstances.get", status=503, times=1)
    ti, pushed = pushing_ti()
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        assert EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID).execute({"ti": ti}) is None
    assert CONSOLE_URL_XCOM_KEY not in pushed
    assert f"No console link for EnOS flow instance {env.RUNNING_ID}: " in Said(caplog, capsys).text


def with_console_url(monkeypatch, emulator, template: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(emulator.url, console_url=template))


def pushing_ti() -> tuple[SimpleNamespace, dict[str, object]]:
    pushed: dict[str, object] = {}
    ti = SimpleNamespace(start_date=None, xcom_push=lambda key, value: pushed.update({key: value}))
    return ti, pushed
