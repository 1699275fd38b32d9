"""EnOSFlowInstanceSensor against the emulator: pokes, early failure, and the reschedule race."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import airflow
import pytest

from airflow_enos_provider.exceptions import EnOSFlowInstanceError
from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor
from tests import enos_env as env


@pytest.mark.parametrize(("status", "expected"), [("SUCCESS", True), ("RUNNING", False), ("WAIT", False)])
def test_sensor_poke(enos_conn, status, expected):
    enos_conn.state.set_instance_status(env.RUNNING_ID, status)
    assert EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID).poke({}) is expected


def test_sensor_fails_early_on_other_final_statuses(enos_conn):
    enos_conn.state.set_instance_status(env.RUNNING_ID, "FAIL")
    with pytest.raises(EnOSFlowInstanceError, match=r"is FAIL \(failed tasks: load\)"):
        EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID).poke({})
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, failure_statuses=[])
    assert sensor.poke({}) is False


def test_reschedule_race_is_named_below_twice_the_heartbeat_interval():
    from airflow_enos_provider.sensors.flow_instance import _reschedule_race

    race = _reschedule_race(5, 5)
    assert race is not None
    assert "poke_interval=5 s" in race and "[workers] min_heartbeat_interval=5 s" in race
    assert "deferrable=True" in race and "at least 10 s" in race
    assert _reschedule_race(9.5, 5) is not None
    assert _reschedule_race(10, 5) is None and _reschedule_race(60, 5) is None
    assert _reschedule_race(1, None) is None  # Airflow 2: no task supervisor


@pytest.mark.parametrize(
    ("kwargs", "warned"),
    [
        ({"mode": "reschedule", "poke_interval": 5}, True),
        ({"mode": "reschedule", "poke_interval": 30}, False),
        ({"mode": "poke", "poke_interval": 5}, False),
    ],
)
def test_the_sensor_warns_of_the_reschedule_race_in_its_log(enos_conn, caplog, capsys, kwargs, warned):
    from tests.operators.test_failure_logs import Said

    if airflow.__version__.startswith("2."):
        pytest.skip("Airflow 2 has no task supervisor, so no race (_reschedule_race(..., None) is None)")
    enos_conn.state.set_instance_status(env.RUNNING_ID, "SUCCESS")
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, **kwargs)
    # What Airflow 3's reschedule mode asks of the task instance before the first poke.
    ti = SimpleNamespace(get_first_reschedule_date=lambda context: None)
    with caplog.at_level(logging.WARNING):
        sensor.execute({"ti": ti})
    text = Said(caplog, capsys).text
    assert ("is not comfortably above [workers] min_heartbeat_interval" in text) is warned
