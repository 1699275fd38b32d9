"""Test the quickstart DAG (dags/example_enos_quickstart.py) with the EnOS emulator standing in for EnOS.

The fixtures come from the provider's pytest plugin: installing the package is the whole setup.
"""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
except ImportError:  # Airflow 3.0
    from airflow.models.dagbag import DagBag

from airflow_enos_provider.status import EnOSFlowInstanceStatus

DAGS = Path(__file__).resolve().parents[1] / "dags"
INSTANCE = "2438-202612010600"


@pytest.fixture
def enos_seed():
    """Give the emulator our tenant: the app and user the connection signs in as, and our flow."""
    return {
        "apps": [{"access_key": "ak-test", "secret_key": "sk-test"}],
        "users": [{"user_id": "u-data-eng", "org_id": "o-plant"}],
        "flows": [{"flow_id": 2438, "name": "daily_load", "tasks": ["extract", "load"]}],
    }


def run_dag(dag_id, conf):
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    return bag.get_dag(dag_id).test(run_conf=conf)


def test_the_dag_cancels_the_running_instance(enos_emulator, enos_connection):
    enos_emulator.state.add_instance(INSTANCE, 2438, status="RUNNING")

    run = run_dag("example_enos_quickstart", {"flow_inst_id": INSTANCE})

    assert run.state == "success"
    assert enos_emulator.state.instance_status(INSTANCE) == EnOSFlowInstanceStatus.CANCEL
    (cancel,) = [r for r in enos_emulator.state.requests if r.operation == "flowInstances.cancel"]
    assert cancel.body == {"flowInstId": INSTANCE}
    assert cancel.query["userId"] == enos_connection.user_id


def test_a_cancel_answered_503_once_is_retried(enos_emulator, enos_connection):
    enos_emulator.state.add_instance(INSTANCE, 2438, status="RUNNING")
    enos_emulator.state.inject("http_5xx", "flowInstances.cancel", status=503, times=1)

    run = run_dag("example_enos_quickstart", {"flow_inst_id": INSTANCE})

    assert run.state == "success"
    assert enos_emulator.state.instance_status(INSTANCE) == EnOSFlowInstanceStatus.CANCEL
    assert enos_emulator.state.count("flowInstances.cancel") == 2
