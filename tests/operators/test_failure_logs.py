"""A failed instance's failed-task logs, read in the worker, against the emulator; and the console link."""

from __future__ import annotations

import logging

import pytest

from airflow_enos_provider._compat import mask_secret
from airflow_enos_provider._status import task_records
from airflow_enos_provider.exceptions import EnOSFlowInstanceError, EnOSValidationError
from airflow_enos_provider.hooks.enos import EnOSHook
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor
from tests import enos_env as env

LOAD_LOG = "starting load\nreading 3 files\nERROR: disk full on /data (wrote 512 MB of 2 GB)\n"


def fail_running_instance(emulator, log: str | None = LOAD_LOG) -> str:
    """Make the seeded running instance FAIL (its task ``load`` fails) with ``log``; return load's id."""
    emulator.state.set_instance_status(env.RUNNING_ID, "FAIL")
    load = task_records(EnOSHook().get_flow_instance(env.RUNNING_ID))[1]
    assert load.name == "load" and load.task_inst_id is not None
    if log is not None:
        emulator.state.set_task_log(load.task_inst_id, log)
    return load.task_inst_id


class Said:
    """What a task logged, wherever this Airflow puts it (stdlib records on 3.0, stdout on 3.2+)."""

    def __init__(self, caplog, capsys) -> None:
        out = capsys.readouterr()
        self.text = "\n".join(r.getMessage() for r in caplog.records) + "\n" + out.out + out.err


def log_reads(emulator) -> int:
    return emulator.state.count("taskInstances.getLog")


def test_a_failed_run_shows_the_failed_tasks_log_and_quotes_its_end(enos_conn, caplog, capsys):
    load_id = fail_running_instance(enos_conn)
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID, poll_interval=0.01)
    event = op._wait_trigger([env.RUNNING_ID], target_statuses=op.success_statuses).run_inline()
    assert log_reads(enos_conn) == 0  # the wait (the trigger) reads no log
    capsys.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(EnOSFlowInstanceError) as caught:
        op.execute_complete({}, event)
    assert log_reads(enos_conn) == 1
    assert str(caught.value) == (
        f"EnOS flow instance ended badly: {env.RUNNING_ID} is FAIL (failed tasks: load)\n"
        f"Last lines of the log of EnOS task load (task instance {load_id}, FAIL):\n" + LOAD_LOG.rstrip("\n")
    )
    assert caught.value.statuses == {env.RUNNING_ID: "FAIL"}
    said = Said(caplog, capsys).text
    header = (
        f"----- EnOS task load (task instance {load_id}, FAIL) of flow instance {env.RUNNING_ID}: "
        "its whole log -----"
    )
    assert f"{header}\n{LOAD_LOG.rstrip()}" in said


def test_a_deferred_sensor_reads_the_logs_when_it_resumes_in_the_worker(enos_conn, caplog, capsys):
    fail_running_instance(enos_conn)
    sensor = EnOSFlowInstanceSensor(
        task_id="s", flow_inst_id=env.RUNNING_ID, deferrable=True, poke_interval=1
    )
    event = _sensor_event(sensor)
    assert event["status"] == "failed" and log_reads(enos_conn) == 0
    resumed = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, deferrable=True)
    with pytest.raises(EnOSFlowInstanceError, match=r"(?s)failed tasks: load.*ERROR: disk full on /data"):
        resumed.execute_complete({}, event)
    assert log_reads(enos_conn) == 1


def _sensor_event(sensor):
    from airflow_enos_provider.triggers.flow_instance import EnOSFlowInstanceTrigger

    trigger = EnOSFlowInstanceTrigger(
        [env.RUNNING_ID], target_statuses=sensor.target_statuses, failure_statuses=sensor.failure_statuses
    )
    return trigger.run_inline()


def test_a_poking_sensor_quotes_the_log_too(enos_conn):
    fail_running_instance(enos_conn)
    with pytest.raises(EnOSFlowInstanceError, match=r"(?s)is FAIL \(failed tasks: load\).*ERROR: disk full"):
        EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID).poke({})


def test_a_long_log_is_cut_to_failure_log_bytes_from_its_end(enos_conn, caplog, capsys):
    lines = [f"{i:06d} processing partition {i}" for i in range(20_000)]  # about 600 KB
    fail_running_instance(enos_conn, "\n".join(lines) + "\nERROR: the last line\n")
    op = EnOSTriggerFlowOperator(
        task_id="start", flow_id=env.FLOW_ID, poll_interval=0.01, failure_log_bytes=4096
    )
    event = op._wait_trigger([env.RUNNING_ID], target_statuses=op.success_statuses).run_inline()
    capsys.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(EnOSFlowInstanceError) as caught:
        op.execute_complete({}, event)
    said = Said(caplog, capsys).text
    assert "the last 4096 bytes of its log -----" in said
    assert "ERROR: the last line" in said and lines[-150] not in said and lines[-100] in said
    quoted = str(caught.value).split(":\n", 1)[1]
    assert quoted.endswith("ERROR: the last line") and 900 < len(quoted) <= 1000


def test_a_log_that_cannot_be_read_is_reported_not_fatal(enos_conn, caplog, capsys):
    load_id = fail_running_instance(enos_conn)
    enos_conn.state.inject("html", "taskInstances.getLog", status=404)
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID, poll_interval=0.01)
    event = op._wait_trigger([env.RUNNING_ID], target_statuses=op.success_statuses).run_inline()
    capsys.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(EnOSFlowInstanceError) as caught:
        op.execute_complete({}, event)
    message = str(caught.value)
    assert message.startswith(
        f"EnOS flow instance ended badly: {env.RUNNING_ID} is FAIL (failed tasks: load)"
    )
    assert f"The log of EnOS task load (task instance {load_id}, FAIL) could not be read: " in message
    assert "404" in message
    assert (
        f"EnOS task load (task instance {load_id}, FAIL) of flow instance {env.RUNNING_ID}: log not read"
        in (Said(caplog, capsys).text)
    )


def test_an_empty_log_is_reported(enos_conn):
    fail_running_instance(enos_conn, log="")
    with pytest.raises(EnOSFlowInstanceError, match=r"could not be read: EnOS returned an empty log"):
        EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID).poke({})


def test_masked_values_in_a_log_are_masked_in_the_task_log_and_the_error(enos_conn, caplog, capsys):
    password = "db-pass-4f7a9c21e8"
    mask_secret(password)
    env.SECRETS_SEEN.add(password)  # the suite's final leak check looks for it in every log
    fail_running_instance(enos_conn, f"connecting with password={password}\nERROR: auth failed\n")
    capsys.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(EnOSFlowInstanceError) as caught:
        EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID).poke({})
    said = Said(caplog, capsys).text
    assert "connecting with password=***" in str(caught.value) and password not in str(caught.value)
    assert "connecting with password=***" in said and password not in said


def test_failure_log_bytes_zero_reads_no_log_and_bad_values_fail_at_parse(enos_conn):
    fail_running_instance(enos_conn)
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, failure_log_bytes=0)
    with pytest.raises(EnOSFlowInstanceError) as caught:
        sensor.poke({})
    assert (
        str(caught.value) == f"EnOS flow instance ended badly: {env.RUNNING_ID} is FAIL (failed tasks: load)"
    )
    assert log_reads(enos_conn) == 0
    for bad in (-1, "16k", 2**21):
        with pytest.raises(
            EnOSValidationError, match="failure_log_bytes must be an integer from 0 to 1048576"
        ):
            EnOSTriggerFlowOperator(task_id="t", flow_id=1, failure_log_bytes=bad)


def test_a_cancel_that_finds_the_instance_failed_logs_why_and_succeeds(enos_conn, caplog, capsys):
    fail_running_instance(enos_conn)
    enos_conn.state.cancel_final = "success"  # EnOS accepts the cancel of a finished instance silently
    op = CancelFlowInstanceOperator(
        task_id="cancel", flow_inst_id=env.RUNNING_ID, wait_for_termination=True, poll_interval=0.01
    )
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        result = op.execute({})
    assert result == {env.RUNNING_ID: {"outcome": "cancelled", "status": "FAIL"}}
    assert "ERROR: disk full on /data" in Said(caplog, capsys).text


# ----------------------------------------------------------------------------- the console link
